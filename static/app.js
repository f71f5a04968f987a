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
// The student list's selection: "select all" (a real checkbox, shown only when this script
// runs) and the count on the bulk button. Without the script each box still works alone.
(() => {
  const all = document.querySelector("[data-select-all]");
  if (!all) {
    return;
  }
  const name = all.getAttribute("data-select-all");
  const boxes = () => Array.from(document.querySelectorAll(`input[type=checkbox][name="${name}"]`));
  const button = document.getElementById("reset-selected");
  const idle = button ? button.textContent : "";
  const update = () => {
    const list = boxes();
    const picked = list.filter((b) => b.checked).length;
    all.checked = picked > 0 && picked === list.length;
    all.indeterminate = picked > 0 && picked < list.length;
    if (button) {
      const label = button.getAttribute("data-count-label");
      button.textContent = picked && label ? label.replace("{n}", String(picked)) : idle;
    }
  };
  all.hidden = false;
  all.addEventListener("change", () => {
    boxes().forEach((b) => {
      b.checked = all.checked;
    });
    update();
  });
  document.addEventListener("change", (event) => {
    if (event.target.name === name) {
      update();
    }
  });
  update();
})();
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
// The roll board: fetch the live part again every few seconds while the page is visible
// (`data-live` names the URL, `data-every` the seconds). One request per update; a failed one
// keeps the last table and says so.
(() => {
  const box = document.querySelector("[data-live]");
  if (!box) {
    return;
  }
  const url = box.getAttribute("data-live");
  const every = Number(box.getAttribute("data-every") || "5") * 1000;
  const refresh = async () => {
    if (document.hidden) {
      return;
    }
    try {
      const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
      if (response.redirected) {
        window.location.reload(); // the session ended: the login page, then back here
        return;
      }
      if (!response.ok) {
        throw new Error(String(response.status));
      }
      box.innerHTML = await response.text();
      box.removeAttribute("data-stale");
    } catch (error) {
      box.setAttribute("data-stale", "true");
    }
  };
  window.setInterval(refresh, every);
})();
// The nav: mark where you are; on a phone, fold the staff links behind "Menu".
(() => {
  const nav = document.getElementById("main-nav");
  if (!nav) {
    return;
  }
  const here = window.location.pathname;
  let best = null;
  nav.querySelectorAll("a[href]").forEach((a) => {
    const href = a.getAttribute("href");
    if ((here === href || here.startsWith(`${href}/`)) && (!best || href.length > best.getAttribute("href").length)) {
      best = a;
    }
  });
  if (best) {
    best.setAttribute("aria-current", "page");
  }
  const toggle = document.querySelector(".nav-toggle");
  if (!toggle) {
    return;
  }
  const bar = toggle.closest(".topbar");
  bar.classList.add("js-nav");
  toggle.hidden = false;
  toggle.addEventListener("click", () => {
    const open = bar.classList.toggle("nav-open");
    toggle.setAttribute("aria-expanded", open ? "true" : "false");
  });
})();
