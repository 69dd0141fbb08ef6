// The booking form works without this script. With it, after a refused submit the
// keyboard and screen reader start at the list of problems, and each problem's link
// puts the cursor in the box to fix.
(function () {
  "use strict";
  var summary = document.getElementById("error-summary") || document.getElementById("problem");
  if (summary) {
    summary.focus();
  }
  var links = document.querySelectorAll("#error-summary a[href^='#']");
  Array.prototype.forEach.call(links, function (link) {
    link.addEventListener("click", function (event) {
      var target = document.getElementById(link.getAttribute("href").slice(1));
      if (!target) {
        return;
      }
      event.preventDefault();
      var group = target.closest("fieldset, .field");
      (group || target).scrollIntoView();
      target.focus();
    });
  });
})();
