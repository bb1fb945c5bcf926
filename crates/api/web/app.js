// signet's admin page. Plain JS, no build step, nothing loaded from elsewhere. It calls the
// same /api/v1 endpoints as the CLI's users do, with the session cookie; every change carries
// the session's CSRF token in X-CSRF-Token. Text from the server is only ever put into the
// page as text (textContent), never as HTML.
"use strict";

const page = { csrf: null, open: null, configs: new Map() };

const $ = (selector) => document.querySelector(selector);

// An element with attributes and children (strings become text nodes).
function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function say(text) {
  const status = $("#status");
  status.textContent = "";
  // A fresh text node so that screen readers announce a repeated message too.
  window.setTimeout(() => { status.textContent = text; }, 10);
}

function when(text) {
  return text ? el("time", { datetime: text }, text.replace("T", " ").replace("Z", " UTC")) : "never";
}

// One call of the API: { ok, status, data }. A 401 sends the user back to sign in.
async function api(method, path, body, contentType) {
  const headers = { Accept: "application/json" };
  if (method !== "GET" && method !== "HEAD" && page.csrf) headers["X-CSRF-Token"] = page.csrf;
  if (body !== undefined) headers["Content-Type"] = contentType || "application/json";
  let response;
  try {
    response = await fetch(path, {
      method, headers, body, credentials: "same-origin", cache: "no-store", redirect: "error",
    });
  } catch (e) {
    return { ok: false, status: 0, data: { error: { code: "network", message: "the server did not answer" } } };
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch (e) { data = text; }
  }
  if (response.status === 401 && path !== "/ui/session") {
    showSignIn("The session has ended; sign in again.");
  }
  return { ok: response.ok, status: response.status, data };
}

function errorOf(answer) {
  if (answer.data && answer.data.error) return answer.data.error.message;
  return "the server answered " + answer.status;
}

// ---- Signing in and out --------------------------------------------------------------------

function showSignIn(message) {
  page.csrf = null;
  page.open = null;
  $("#app").hidden = true;
  $("#who").hidden = true;
  $("#sign-in").hidden = false;
  const error = $("#sign-in-error");
  error.hidden = !message;
  error.textContent = message || "";
  $("#token").focus();
}

function showApp(session) {
  page.csrf = session.csrf_token;
  $("#sign-in").hidden = true;
  $("#sign-in-error").hidden = true;
  $("#who-name").textContent = "Signed in as " + session.name + " (" + session.scope + ")";
  $("#who").hidden = false;
  $("#app").hidden = false;
  loadDomains();
}

async function signIn(event) {
  event.preventDefault();
  const input = $("#token");
  const button = $("#sign-in-form button[type=submit]");
  button.disabled = true;
  const answer = await api("POST", "/ui/session", JSON.stringify({ token: input.value.trim() }));
  button.disabled = false;
  input.value = "";
  if (!answer.ok) {
    showSignIn("Not signed in: " + errorOf(answer));
    return;
  }
  showApp(answer.data);
  say("Signed in as " + answer.data.name + ".");
  $("#main").focus();
}

async function signOut() {
  const answer = await api("DELETE", "/ui/session");
  if (!answer.ok && answer.status !== 401) {
    say("Not signed out: " + errorOf(answer));
    return;
  }
  $("#domains tbody").replaceChildren();
  $("#pane").hidden = true;
  $("#analysis").replaceChildren();
  showSignIn(null);
  say("Signed out.");
}

// ---- Tabs (WAI-ARIA tabs: arrows, Home, End) --------------------------------------------------

function selectTab(tab) {
  for (const other of document.querySelectorAll("[role=tab]")) {
    const selected = other === tab;
    other.setAttribute("aria-selected", String(selected));
    other.tabIndex = selected ? 0 : -1;
    $("#" + other.getAttribute("aria-controls")).hidden = !selected;
  }
  tab.focus();
  if (tab.id === "tab-queue") loadQueue();
}

function tabKeys(event) {
  const tabs = [...document.querySelectorAll("[role=tab]")];
  const at = tabs.indexOf(event.target);
  const next = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: tabs.length - 1 }[event.key];
  if (next === undefined) return;
  event.preventDefault();
  selectTab(tabs[(next + tabs.length) % tabs.length]);
}

// ---- The DKIM tab ------------------------------------------------------------------------------

async function loadDomains() {
  const configs = [];
  let cursor = null;
  do {
    const query = "/api/v1/dkim?limit=100" + (cursor ? "&cursor=" + encodeURIComponent(cursor) : "");
    const answer = await api("GET", query);
    if (!answer.ok) {
      say("Could not list the domains: " + errorOf(answer));
      return;
    }
    configs.push(...answer.data.configs);
    cursor = answer.data.next_cursor;
  } while (cursor);
  page.configs = new Map(configs.map((c) => [c.domain, c]));
  $("#domains tbody").replaceChildren(...configs.map(domainRow));
  $("#no-domains").hidden = configs.length > 0;
  if (page.open && page.configs.has(page.open)) markSelected(page.open);
}

function domainRow(config) {
  const toggle = el("input", {
    type: "checkbox", role: "switch", class: "toggle", id: "enabled-" + config.domain,
    "data-domain": config.domain, "aria-label": "Signing enabled for " + config.domain,
    onchange: (event) => setEnabled(config.domain, event.target),
  });
  toggle.checked = Boolean(config.enabled);
  return el("tr", { "data-domain": config.domain },
    el("th", { scope: "row", "data-label": "Domain" },
      el("button", {
        type: "button", class: "link open", "data-domain": config.domain,
        "aria-label": "Details of " + config.domain, onclick: () => openPane(config.domain),
      }, config.domain)),
    el("td", { "data-label": "Enabled" }, toggle,
      el("span", { class: "toggle-label", "aria-hidden": "true" }, config.enabled ? "On" : "Off")),
    el("td", { class: "status", "data-label": "Status" },
      el("span", { class: "badge " + config.status }, config.status)),
    el("td", { class: "last-checked", "data-label": "Last checked" }, when(config.last_checked)));
}

function markSelected(domain) {
  for (const row of document.querySelectorAll("#domains tbody tr")) {
    row.classList.toggle("selected", row.dataset.domain === domain);
  }
}

function updateRow(config) {
  page.configs.set(config.domain, config);
  const old = document.querySelector(`#domains tbody tr[data-domain="${CSS.escape(config.domain)}"]`);
  if (old) old.replaceWith(domainRow(config));
  if (page.open === config.domain) markSelected(config.domain);
}

// Enabling checks the CNAMEs live; a 409 carries the records to publish and what was found.
async function setEnabled(domain, toggle) {
  const wanted = toggle.checked;
  toggle.disabled = true;
  $("#problem").hidden = true;
  const answer = await api("PATCH", "/api/v1/dkim/" + encodeURIComponent(domain),
    JSON.stringify({ Enabled: wanted }));
  toggle.disabled = false;
  if (answer.ok) {
    updateRow(answer.data);
    say("Signing " + (wanted ? "enabled" : "disabled") + " for " + domain + ".");
    if (page.open === domain) openPane(domain);
    $(`#enabled-${CSS.escape(domain)}`).focus();
    return;
  }
  toggle.checked = !wanted;
  showProblem(domain, answer);
}

function showProblem(domain, answer) {
  const box = $("#problem");
  const error = (answer.data && answer.data.error) || {};
  const children = [el("h3", {}, "Could not change " + domain), el("p", { class: "problem-message" }, errorOf(answer))];
  if (error.code === "cname_missing") {
    children.push(el("p", {}, "Publish these records at " + domain + "'s DNS host, then try again:"));
    children.push(el("div", { class: "table-wrap" }, el("table", { class: "missing-records" },
      el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Type"), el("th", { scope: "col" }, "Host name"),
        el("th", { scope: "col" }, "Points to"), el("th", { scope: "col" }, el("span", { class: "visually-hidden" }, "Copy")))),
      el("tbody", {}, (error.records || []).map((r) => el("tr", {},
        el("td", {}, r.type), el("td", { class: "cname mono" }, r.name), el("td", { class: "cname mono" }, r.value),
        el("td", {}, copyButton(r.value, "the target of " + r.name))))))));
    children.push(el("p", {}, "What was found:"));
    children.push(el("ul", { class: "found" }, (error.found || []).map((f) =>
      el("li", {}, el("strong", {}, f.selector), " (" + f.name + "): " + f.found))));
  }
  box.replaceChildren(...children);
  box.hidden = false;
  box.scrollIntoView({ block: "nearest" });
}

function copyButton(text, what) {
  return el("button", {
    type: "button", class: "copy", "aria-label": "Copy " + what,
    onclick: () => copy(text, what),
  }, "Copy");
}

async function copy(text, what) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
    } else {
      const area = el("textarea", { readonly: true, class: "visually-hidden" });
      area.value = text;
      document.body.append(area);
      area.select();
      document.execCommand("copy");
      area.remove();
    }
    say("Copied " + what + ".");
  } catch (e) {
    say("Could not copy; select the text instead.");
  }
}

async function openPane(domain) {
  page.open = domain;
  markSelected(domain);
  const path = encodeURIComponent(domain);
  const [config, records, audit] = await Promise.all([
    api("GET", "/api/v1/dkim/" + path),
    api("GET", "/api/v1/records/" + path),
    api("GET", "/api/v1/audit?domain=" + path),
  ]);
  if (!config.ok) {
    say("Could not show " + domain + ": " + errorOf(config));
    return;
  }
  const pane = $("#pane");
  const wasHidden = pane.hidden;
  fillPane(config.data, records.ok ? records.data : null, audit.ok ? audit.data : []);
  pane.hidden = false;
  if (wasHidden) pane.focus();
}

function fillPane(c, records, audit) {
  page.configs.set(c.domain, c);
  $("#pane").dataset.domain = c.domain;
  $("#pane-title").textContent = c.domain;
  $("#pane-status").replaceChildren(el("span", { class: "badge " + c.status }, c.status),
    c.summary ? " " + c.summary : "");
  $("#pane-enabled").textContent = c.enabled ? "Yes" : "No";
  $("#pane-algorithm").textContent = c.algorithm || "—";
  const sizes = [c.selector1_key_size, c.selector2_key_size].filter((s) => s);
  $("#pane-key-size").textContent = sizes.length
    ? "selector1: " + (c.selector1_key_size || "none") + " bits, selector2: " + (c.selector2_key_size || "none") + " bits"
    : "no keys";
  $("#pane-selector").textContent = c.signing_selector
    ? c.signing_selector + (c.signing_domain ? " (d=" + c.signing_domain + ")" : "") : "not signing";
  $("#pane-key-created").replaceChildren(when(c.key_creation_time));
  $("#pane-rotate-on-date").replaceChildren(c.rotate_on_date
    ? el("span", {}, when(c.rotate_on_date),
      " (" + (c.selector_before_rotate_on_date || "?") + " until then, " + (c.selector_after_rotate_on_date || "?") + " after)")
    : "no rotation under way");
  $("#pane-last-checked").replaceChildren(when(c.last_checked));
  const cnames = records ? records.customer : [];
  $("#pane-cnames tbody").replaceChildren(...cnames.map((r) => el("tr", {},
    el("td", { class: "cname mono", "data-label": "Host name" }, r.name, " ", copyButton(r.name, "the host name " + r.name)),
    el("td", { class: "cname mono", "data-label": "Points to" }, r.value),
    el("td", {}, copyButton(r.value, "the target of " + r.name)))));
  const found = (c.status_detail || "").split("; ").filter((s) => s);
  $("#pane-found").replaceChildren(...found.map((line) => el("li", {}, line)));
  $("#rotate").disabled = !c.enabled;
  $("#rotate").title = c.enabled ? "" : "Only an enabled config rotates";
  $("#pane-audit tbody").replaceChildren(...audit.slice().reverse().slice(0, 50).map((a) => el("tr", {},
    el("td", { "data-label": "When" }, when(a.when)),
    el("td", { "data-label": "Who" }, a.who),
    el("td", { "data-label": "What" }, a.what),
    el("td", { class: "detail mono", "data-label": "Detail" },
      typeof a.detail === "string" ? a.detail : JSON.stringify(a.detail)))));
}

function askRotate() {
  const domain = page.open;
  if (!domain) return;
  $("#rotate-dialog-text").textContent = "A new key is made for " + domain +
    "'s other selector and published now; signing switches to it once DNS caches have it (the RotateOnDate). The old key is retired after that.";
  const dialog = $("#rotate-dialog");
  dialog.returnValue = "";
  dialog.showModal();
  $("#rotate-cancel").focus();
}

async function rotateClosed() {
  const dialog = $("#rotate-dialog");
  const domain = page.open;
  if (dialog.returnValue !== "rotate" || !domain) {
    $("#rotate").focus();
    return;
  }
  $("#rotate").disabled = true;
  const answer = await api("POST", "/api/v1/dkim/" + encodeURIComponent(domain) + "/rotate");
  if (!answer.ok) {
    $("#rotate").disabled = false;
    showProblem(domain, answer);
    return;
  }
  updateRow(answer.data);
  await openPane(domain);
  say("Rotation started for " + domain + ": " + answer.data.selector_after_rotate_on_date +
    " signs from " + answer.data.rotate_on_date + ".");
  $("#pane-rotate-on-date").focus();
}

// ---- The header analyzer ----------------------------------------------------------------------

async function analyze(event) {
  event.preventDefault();
  const text = $("#analyze-input").value;
  const button = $("#analyze-submit");
  button.disabled = true;
  const answer = await api("POST", "/api/v1/analyze", text, "text/plain; charset=utf-8");
  button.disabled = false;
  const out = $("#analysis");
  if (!answer.ok) {
    out.replaceChildren(el("p", { class: "problem", role: "alert" }, "Not analyzed: " + errorOf(answer)));
    return;
  }
  const { headers, hops } = answer.data;
  const parts = [el("h3", {}, headers.length + " authentication header" + (headers.length === 1 ? "" : "s"))];
  for (const h of headers) {
    parts.push(el("article", { class: "analysis-header" },
      el("h3", {}, h.name, el("span", { class: "hint" }, " (header " + h.position + ")")),
      el("p", { class: "summary" }, h.summary),
      el("p", { class: "value mono" }, h.value),
      h.items.length ? el("dl", { class: "items" }, h.items.map((i) => [
        el("dt", { class: "mono" }, i.key + "=" + i.value), el("dd", {}, i.meaning)])) : null));
  }
  if (hops.length) {
    parts.push(el("h3", {}, "Hops, oldest first"));
    parts.push(el("div", { class: "table-wrap" }, el("table", { class: "hops" },
      el("thead", {}, el("tr", {}, ["From", "By", "With", "Date", "Delay"].map((t) => el("th", { scope: "col" }, t)))),
      el("tbody", {}, hops.map((h) => el("tr", {},
        el("td", {}, h.from || "—"), el("td", {}, h.by || "—"), el("td", {}, h.with || "—"),
        el("td", {}, h.date || "—"),
        el("td", {}, h.delay_seconds === null || h.delay_seconds === undefined ? "—" : h.delay_seconds + " s")))))));
  }
  out.replaceChildren(...parts);
  say("Analyzed: " + headers.length + " header" + (headers.length === 1 ? "" : "s") + " explained.");
}

// ---- The queue --------------------------------------------------------------------------------

async function loadQueue() {
  const answer = await api("GET", "/api/v1/queue");
  const note = $("#queue-note");
  if (answer.status === 404) {
    $("#queue tbody").replaceChildren();
    note.textContent = "This server keeps no queue (the relay is off).";
    note.hidden = false;
    return;
  }
  if (!answer.ok) {
    note.textContent = "Could not read the queue: " + errorOf(answer);
    note.hidden = false;
    return;
  }
  $("#queue tbody").replaceChildren(...answer.data.map((e) => el("tr", {},
    el("td", { class: "mono", "data-label": "ID" }, e.id),
    el("td", { "data-label": "Tenant" }, e.tenant),
    el("td", { "data-label": "From" }, e.from),
    el("td", { "data-label": "To" }, e.to),
    el("td", { "data-label": "Attempts" }, String(e.attempts)),
    el("td", { "data-label": "Next attempt" }, when(e.next_attempt)))));
  note.textContent = answer.data.length ? "" : "The queue is empty.";
  note.hidden = answer.data.length > 0;
}

// ---- Start ------------------------------------------------------------------------------------

async function start() {
  $("#sign-in-form").addEventListener("submit", signIn);
  $("#sign-out").addEventListener("click", signOut);
  $("#refresh-domains").addEventListener("click", loadDomains);
  $("#refresh-queue").addEventListener("click", loadQueue);
  $("#pane-close").addEventListener("click", () => {
    const domain = page.open;
    page.open = null;
    $("#pane").hidden = true;
    markSelected(null);
    const opener = domain && document.querySelector(`button.open[data-domain="${CSS.escape(domain)}"]`);
    if (opener) opener.focus();
  });
  $("#rotate").addEventListener("click", askRotate);
  $("#rotate-dialog").addEventListener("close", rotateClosed);
  $("#analyze-form").addEventListener("submit", analyze);
  for (const tab of document.querySelectorAll("[role=tab]")) {
    tab.addEventListener("click", () => selectTab(tab));
    tab.addEventListener("keydown", tabKeys);
  }
  const session = await api("GET", "/ui/session");
  if (session.ok) showApp(session.data);
  else showSignIn(null);
}

document.addEventListener("DOMContentLoaded", start);
