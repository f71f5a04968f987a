// hubdesk: tiny progressive enhancements; every page works without this file.
document.addEventListener("submit", (event) => {
  const form = event.target;
  const question = form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
    return;
  }
  // Long work (hashing a class's passwords): show progress and block double submits.
  const button = form.querySelector("button[type=submit]");
  if (button && form.method.toLowerCase() === "post") {
    window.setTimeout(() => {
      button.disabled = true;
      button.dataset.label = button.textContent;
      button.textContent = "Working…";
    }, 0);
  }
});
document.addEventListener("click", (event) => {
  if (event.target.closest("[data-print]")) {
    window.print();
  }
});
window.addEventListener("pageshow", () => {
  document.querySelectorAll("button[data-label]").forEach((b) => {
    b.disabled = false;
    b.textContent = b.dataset.label;
  });
});
// A page with a person's data never comes back from the back-forward cache. Chromium keeps
// even `Cache-Control: no-store` pages there (Chromium 156 over http, at least), so Back after
// logout on a shared computer would show the previous person's page: blank it as it goes in,
// and load it afresh if it comes back (after logout that lands on the login form).
if (document.body && document.body.hasAttribute("data-person")) {
  window.addEventListener("pagehide", (event) => {
    if (event.persisted) {
      document.title = "";
      document.body.replaceChildren();
    }
  });
  window.addEventListener("pageshow", (event) => {
    if (event.persisted) {
      window.location.reload();
    }
  });
}
