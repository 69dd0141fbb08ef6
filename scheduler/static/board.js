// The day board keeps itself current: it asks every few seconds whether what it shows
// changed (a short fingerprint with an ETag), and if so fetches the page again and swaps
// in the new grid. Without JavaScript the board is the same page; reload to refresh.
(function () {
  const board = document.getElementById("board");
  if (!board || !board.dataset.versionUrl || !window.fetch) return;
  const status = document.getElementById("board-status");
  const every = (parseInt(board.dataset.pollSeconds, 10) || 20) * 1000;
  let version = board.dataset.version;
  let busy = false;

  function swap(html) {
    const next = new DOMParser().parseFromString(html, "text/html").getElementById("board");
    if (!next) return;
    // Never pull the grid from under someone typing or focused in it.
    if (board.contains(document.activeElement) && document.activeElement !== document.body) return;
    const openEarlier = board.querySelector("details.earlier[open]");
    board.innerHTML = next.innerHTML;
    if (openEarlier) {
      const details = board.querySelector("details.earlier");
      if (details) details.open = true;
    }
    version = next.dataset.version;
    board.dataset.version = version;
    const nextStatus = new DOMParser().parseFromString(html, "text/html").getElementById("board-status");
    if (status && nextStatus) status.textContent = nextStatus.textContent + " · updated";
  }

  function check() {
    if (busy || document.hidden) return;
    busy = true;
    fetch(board.dataset.versionUrl, {
      credentials: "same-origin",
      headers: { "If-None-Match": '"' + version + '"', Accept: "application/json" },
      cache: "no-store",
    })
      .then(function (response) {
        if (response.status !== 200) return null;
        return response.json();
      })
      .then(function (data) {
        if (!data || data.version === version) return null;
        return fetch(window.location.href, { credentials: "same-origin", cache: "no-store" })
          .then(function (response) { return response.ok ? response.text() : null; })
          .then(function (html) { if (html) swap(html); });
      })
      .catch(function () {})
      .then(function () { busy = false; });
  }

  setInterval(check, every);
  document.addEventListener("visibilitychange", function () { if (!document.hidden) check(); });
})();
