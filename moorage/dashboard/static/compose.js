// Compose: a project's logs, merged and prefixed by service.
(() => {
  "use strict";
  let source = null;
  document.body.addEventListener("click", (e) => {
    const button = e.target.closest("[data-project-logs]");
    if (!button) return;
    if (source) source.close();
    const pre = document.getElementById("project-log");
    pre.replaceChildren();
    source = window.moorLogView(pre, `/compose/${encodeURIComponent(button.dataset.projectLogs)}/logs`);
  });
})();
