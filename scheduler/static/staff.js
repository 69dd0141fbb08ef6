// Live preview of a message template while an admin types (the server renders it).
(function () {
  const body = document.querySelector("textarea[data-preview-url]");
  const preview = document.getElementById("preview");
  if (!body || !preview) return;
  const token = document.querySelector("input[name=csrf_token]").value;
  let timer = null;
  // A page (the instructions, the privacy notice) as patients see it: headings, lists, paragraphs.
  function pageOf(blocks) {
    const page = document.createElement("div");
    page.className = "page-preview";
    page.id = "preview-page";
    blocks.forEach(function (block) {
      const kind = block[0], lines = block[1];
      let node;
      if (kind === "list") {
        node = document.createElement("ul");
        lines.forEach(function (line) {
          const item = document.createElement("li");
          item.textContent = line;
          node.appendChild(item);
        });
      } else {
        node = document.createElement(kind === "heading" ? "h4" : "p");
        node.textContent = lines[0];
      }
      page.appendChild(node);
    });
    return page;
  }
  function show(result) {
    preview.textContent = "";
    if (!result.ok) {
      const error = document.createElement("p");
      error.className = "error";
      error.id = "preview-error";
      error.textContent = result.error;
      preview.appendChild(error);
      return;
    }
    if (result.subject) {
      const subject = document.createElement("p");
      subject.id = "preview-subject";
      subject.textContent = "Subject: " + result.subject;
      preview.appendChild(subject);
    }
    const text = result.blocks ? pageOf(result.blocks) : document.createElement("p");
    if (!result.blocks) {
      text.className = "sms sms-out";
      text.id = "preview-text";
      text.textContent = result.text;
    }
    text.lang = body.getAttribute("lang") || preview.dataset.lang || "";
    if (!text.lang) text.removeAttribute("lang");
    const count = document.createElement("p");
    count.className = "hint";
    count.id = "preview-count";
    count.textContent = result.characters + " characters" + (result.segments
      ? ", " + result.segments + " segment" + (result.segments === 1 ? "" : "s") + " (" + result.encoding + ")"
      : "");
    preview.append(text, count);
    if (result.html) {
      const frame = document.createElement("iframe");
      frame.id = "preview-html";
      frame.title = "The email as HTML";
      frame.setAttribute("sandbox", "");
      frame.srcdoc = result.html;
      frame.className = "email-preview";
      preview.appendChild(frame);
    }
  }
  body.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(function () {
      const data = new URLSearchParams({ body: body.value, csrf_token: token });
      fetch(body.dataset.previewUrl, { method: "POST", body: data, credentials: "same-origin" })
        .then(function (response) { return response.json(); })
        .then(show)
        .catch(function () {});
    }, 250);
  });
})();
