// certadns-ddns account pages: the Update Help dialog, its tabs and the copy buttons.
// Plain JavaScript, no framework. Without it the pages still work: the question mark links
// to the help page, both tabs show, and only copying is missing.
"use strict";

(function () {
  var COPIED_MS = 2000;

  function announce(text) {
    var region = document.getElementById("announce");
    if (region) {
      region.textContent = "";
      // A new text node, so that screen readers announce the same text twice in a row.
      window.setTimeout(function () { region.textContent = text; }, 50);
    }
  }

  // Copies with the asynchronous clipboard API where the page is a secure context (HTTPS,
  // localhost), else through a selected, off-screen text area (plain-HTTP deployments).
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "offscreen";
      document.body.appendChild(area);
      area.select();
      var done = false;
      try { done = document.execCommand("copy"); } catch (error) { done = false; }
      document.body.removeChild(area);
      if (done) { resolve(); } else { reject(new Error("copy refused")); }
    });
  }

  function setUpCopyButton(button) {
    var label = button.querySelector(".copy-label");
    var timer = null;
    button.hidden = false;
    button.addEventListener("click", function () {
      copyText(button.getAttribute("data-copy")).then(function () {
        button.classList.add("copied");
        button.setAttribute("aria-label", "Copied");
        if (label) { label.textContent = "\u2713"; }
        announce("Copied to the clipboard");
        window.clearTimeout(timer);
        timer = window.setTimeout(function () {
          button.classList.remove("copied");
          button.setAttribute("aria-label", "Copy");
          if (label) { label.textContent = "Copy"; }
        }, COPIED_MS);
      }, function () {
        announce("Copying failed: select the text and copy it by hand");
      });
    });
  }

  // Tabs after the WAI-ARIA Authoring Practices: arrow keys, Home and End move between them.
  function setUpTabs(tablist) {
    var tabs = Array.prototype.slice.call(tablist.querySelectorAll("[role=tab]"));
    function select(tab, focus) {
      tabs.forEach(function (other) {
        var selected = other === tab;
        other.setAttribute("aria-selected", selected ? "true" : "false");
        other.tabIndex = selected ? 0 : -1;
        var panel = document.getElementById(other.getAttribute("aria-controls"));
        if (panel) { panel.hidden = !selected; }
      });
      // A new panel starts at its top, not under the tabs where the last one was scrolled to.
      var dialog = tablist.closest("dialog");
      if (dialog) { dialog.scrollTop = 0; }
      if (focus) { tab.focus(); }
    }
    tabs.forEach(function (tab, index) {
      tab.addEventListener("click", function () { select(tab, false); });
      tab.addEventListener("keydown", function (event) {
        var next = null;
        if (event.key === "ArrowRight") { next = tabs[(index + 1) % tabs.length]; }
        if (event.key === "ArrowLeft") { next = tabs[(index - 1 + tabs.length) % tabs.length]; }
        if (event.key === "Home") { next = tabs[0]; }
        if (event.key === "End") { next = tabs[tabs.length - 1]; }
        if (next) { event.preventDefault(); select(next, true); }
      });
    });
    tablist.hidden = false;
    select(tabs[0], false);
    tablist.select = select;
    tablist.tabs = tabs;
  }

  function focusable(container) {
    return Array.prototype.slice.call(container.querySelectorAll(
      "a[href], button:not([disabled]), input:not([disabled]), [tabindex]:not([tabindex='-1'])"
    )).filter(function (element) {
      return !element.hidden && element.offsetParent !== null;
    });
  }

  // The modal: showModal() makes the page behind it inert and closes on Escape; Tab and
  // Shift+Tab are kept inside it here, and focus returns to the button that opened it.
  function setUpDialog(dialog) {
    var opener = null;
    dialog.addEventListener("keydown", function (event) {
      if (event.key !== "Tab") { return; }
      var items = focusable(dialog);
      if (items.length === 0) { return; }
      var first = items[0];
      var last = items[items.length - 1];
      if (event.shiftKey && document.activeElement === first) {
        event.preventDefault();
        last.focus();
      } else if (!event.shiftKey && document.activeElement === last) {
        event.preventDefault();
        first.focus();
      }
    });
    dialog.addEventListener("close", function () {
      if (opener) { opener.focus(); }
    });
    // A click on the backdrop (the dialog element itself, outside its content) closes it.
    dialog.addEventListener("click", function (event) {
      if (event.target === dialog) { dialog.close(); }
    });
    Array.prototype.forEach.call(dialog.querySelectorAll("[data-close]"), function (button) {
      button.addEventListener("click", function () { dialog.close(); });
    });
    return function open(from) {
      opener = from;
      var tablist = dialog.querySelector("[role=tablist]");
      if (tablist && tablist.select) { tablist.select(tablist.tabs[0], false); }
      dialog.showModal();
      var firstTab = dialog.querySelector("[role=tab]");
      if (firstTab) { firstTab.focus(); }
    };
  }

  function init() {
    document.documentElement.classList.add("js");
    Array.prototype.forEach.call(document.querySelectorAll("button.copy[data-copy]"), setUpCopyButton);
    Array.prototype.forEach.call(document.querySelectorAll("[role=tablist]"), setUpTabs);
    Array.prototype.forEach.call(document.querySelectorAll("a[data-help]"), function (link) {
      var dialog = document.getElementById(link.getAttribute("data-help"));
      if (!dialog || typeof dialog.showModal !== "function") { return; }
      if (!dialog.openFrom) { dialog.openFrom = setUpDialog(dialog); }
      link.setAttribute("role", "button");
      link.setAttribute("aria-haspopup", "dialog");
      link.addEventListener("click", function (event) {
        event.preventDefault();
        dialog.openFrom(link);
      });
      link.addEventListener("keydown", function (event) {
        if (event.key === " ") { event.preventDefault(); dialog.openFrom(link); }
      });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
