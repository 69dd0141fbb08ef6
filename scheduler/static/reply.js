// The reply editor's live check: length in text messages, and health details to think
// twice about, as staff type. The server checks again when the reply is sent.
(function () {
  const body = document.querySelector("textarea[data-check-url]");
  const live = document.getElementById("reply-live");
  if (!body || !live) return;
  const form = body.form;
  const token = form.querySelector("input[name=csrf_token]").value;
  let timer = null;
  function show(result) {
    live.textContent = "";
    if (!result.ok) {
      const error = document.createElement("p");
      error.className = "error";
      error.textContent = result.error;
      live.appendChild(error);
      return;
    }
    if (!result.characters) return;
    const count = document.createElement("p");
    count.textContent = result.characters + " characters, " + result.segments + " text message"
      + (result.segments === 1 ? "" : "s") + " (" + result.encoding + ")"
      + (result.too_long ? ": too long, 3 at most." : ".");
    if (result.too_long) count.className = "error";
    live.appendChild(count);
    if (result.warnings.length) {
      const note = document.createElement("div");
      note.className = "reply-warnings";
      const lead = document.createElement("p");
      lead.textContent = "Before sending: anyone holding the patient's phone can read a text.";
      const list = document.createElement("ul");
      for (const message of result.warnings) {
        const item = document.createElement("li");
        item.textContent = message;
        list.appendChild(item);
      }
      note.append(lead, list);
      live.appendChild(note);
    }
  }
  body.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(function () {
      const data = new URLSearchParams({ body: body.value, csrf_token: token });
      fetch(body.dataset.checkUrl, { method: "POST", body: data, credentials: "same-origin" })
        .then(function (response) { return response.json(); })
        .then(show)
        .catch(function () {});
    }, 300);
  });
})();
