// recall's conversation viewer: a read-only page over /_recall/api/ (docs/VIEWER.md).
//
// Every stored string reaches the page as text: elements are built with
// createElement and text nodes, never from markup. The Content-Security-Policy
// requires Trusted Types, so an innerHTML assignment would throw anyway.
"use strict";

(() => {
  const API = "/_recall/api";
  const TOKEN_KEY = "recall.token";
  const SVG_NS = "http://www.w3.org/2000/svg";
  const main = document.getElementById("main");

  // -- building the page out of text -----------------------------------------

  function append(el, children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  function setAttributes(el, attrs) {
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") el.setAttribute("class", value);
      else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
      else el.setAttribute(name, value === true ? "" : String(value));
    }
  }

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    setAttributes(el, attrs);
    return append(el, children);
  }

  function svg(tag, attrs, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    setAttributes(el, attrs);
    return append(el, children);
  }

  // Links inside the page only: a fragment, so no stored string can become a URL scheme.
  function link(hash, ...children) {
    return h("a", { href: "#" + hash }, ...children);
  }

  function hashOf(path, params) {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(params || {})) {
      if (value !== null && value !== undefined && value !== "") query.set(key, value);
    }
    const text = query.toString();
    return path + (text ? "?" + text : "");
  }

  const enc = encodeURIComponent;

  function show(...children) {
    main.replaceChildren(...children.flat(Infinity).filter((c) => c));
  }

  // -- formatting -------------------------------------------------------------

  function when(iso) {
    return iso ? iso.replace("T", " ").replace(/:\d\d(\.\d+)?Z$/, "") : "-";
  }

  function number(n) {
    return n === null || n === undefined ? "-" : Number(n).toLocaleString("en-US");
  }

  function ms(value) {
    if (value === null || value === undefined) return "-";
    return value >= 10000 ? (value / 1000).toFixed(1) + " s" : Math.round(value) + " ms";
  }

  function clip(text, width) {
    const line = (text || "").split(/\s+/).filter(Boolean).join(" ");
    return line.length <= width ? line : line.slice(0, width - 1) + "…";
  }

  function bytes(n) {
    return n >= 1024 * 1024 ? (n / 1048576).toFixed(1) + " MB" : n >= 1024 ? (n / 1024).toFixed(1) + " KB" : n + " B";
  }

  function pretty(text) {
    if (text === null || text === undefined) return "";
    try {
      return JSON.stringify(JSON.parse(text), null, 2);
    } catch (_) {
      return text;
    }
  }

  function json(value) {
    return JSON.stringify(value, null, 2);
  }

  // -- the API, with the token prompt -------------------------------------------

  class ApiError extends Error {}

  let tokenPrompt = null;

  function askForToken(refused) {
    if (tokenPrompt) return tokenPrompt;
    const dialog = document.getElementById("token-dialog");
    const form = document.getElementById("token-form");
    const input = document.getElementById("token-input");
    const error = document.getElementById("token-error");
    error.hidden = !refused;
    error.textContent = refused ? "That token was refused; try another." : "";
    input.value = "";
    tokenPrompt = new Promise((resolve) => {
      form.addEventListener("submit", function submitted(event) {
        event.preventDefault();
        if (!input.value) return;
        form.removeEventListener("submit", submitted);
        sessionStorage.setItem(TOKEN_KEY, input.value);
        dialog.close();
        tokenPrompt = null;
        resolve();
      });
    });
    dialog.showModal();
    input.focus();
    return tokenPrompt;
  }

  async function api(path, params) {
    const url = new URL(API + path, location.origin);
    for (const [key, value] of Object.entries(params || {})) {
      for (const one of [].concat(value)) {
        if (one !== null && one !== undefined && one !== "") url.searchParams.append(key, one);
      }
    }
    for (;;) {
      const token = sessionStorage.getItem(TOKEN_KEY);
      const response = await fetch(url, { headers: token ? { "X-Recall-Token": token } : {}, cache: "no-store" });
      if (response.status === 401) {
        await askForToken(Boolean(token));
        continue;
      }
      let body;
      try {
        body = await response.json();
      } catch (_) {
        throw new ApiError(`the server answered ${response.status} without JSON`);
      }
      if (!response.ok) throw new ApiError(body.error ? body.error.message : `the server answered ${response.status}`);
      return body;
    }
  }

  // -- routing: #/path?query ---------------------------------------------------

  let rendering = 0;

  async function route() {
    const [path, query] = location.hash.replace(/^#/, "").split("?");
    const params = new URLSearchParams(query || "");
    const parts = (path || "/").split("/").filter(Boolean).map(decodeURIComponent);
    const view = parts[0] || "list";
    for (const nav of document.querySelectorAll("[data-nav]")) {
      nav.classList.toggle("active", nav.dataset.nav === view);
    }
    const mine = ++rendering;
    const current = () => mine === rendering;
    // data-ready names the view on show once it is drawn (tools and tests wait for it).
    main.removeAttribute("data-ready");
    // Say so when a view takes a while (stats over a big file), instead of showing the last one.
    const slow = setTimeout(() => current() && show(h("p", { class: "muted" }, "Loading…")), 250);
    try {
      if (view === "list") await listView(params, current);
      else if (view === "search") await searchView(params, current);
      else if (view === "c" && parts[1]) await conversationView(parts[1], params.get("at"), current);
      else if (view === "raw" && parts[1]) await rawView(parts[1], current);
      else if (view === "events" && parts[1]) await eventsView(parts[1], current);
      else if (view === "stats") await statsView(params, current);
      else show(h("p", { class: "error" }, "Nothing here. ", link("/", "Back to the conversations")));
    } catch (err) {
      if (current()) show(h("p", { class: "error", role: "alert" }, err instanceof ApiError ? err.message : String(err)));
    }
    clearTimeout(slow);
    if (current()) {
      main.dataset.ready = location.hash;
      window.scrollTo(0, 0);
    }
  }

  // -- conversations -----------------------------------------------------------

  function filtersForm(params) {
    const field = (name, label, placeholder) =>
      h("label", {}, label, h("input", { name, value: params.get(name) || "", placeholder }));
    const form = h("form", { class: "filters", id: "filters" },
      field("upstream", "Upstream", "any"),
      field("model", "Model", "any"),
      field("since", "Since", "7d or 2026-01-31"),
      field("until", "Until", "2026-02-01"),
      h("label", {}, "Status", h("select", { name: "status", id: "status-filter" },
        [["", "any"], ["failed", "failed"], ["in_progress", "in progress"], ["completed", "completed"],
          ["requires_action", "requires action"], ["incomplete", "incomplete"], ["cancelled", "cancelled"]]
          .map(([value, label]) => {
            const option = h("option", { value }, label);
            if ((params.get("status") || "") === value) option.selected = true;
            return option;
          }))),
      h("button", { type: "submit" }, "Filter"),
      h("a", { href: "#/" }, "Clear"));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const values = Object.fromEntries([...new FormData(form)].map(([k, v]) => [k, String(v).trim()]));
      location.hash = hashOf("/", values);
    });
    return form;
  }

  // Marks for a thread's failed and still-running turns, so they stand out in the list.
  function statusBadges(c) {
    return [
      c.failed ? h("span", { class: "badge failed", title: "turns that failed" }, `${c.failed} failed`) : null,
      c.in_progress ? h("span", { class: "badge in-progress", title: "turns still running" }, `${c.in_progress} in progress`) : null,
    ];
  }

  async function listView(params, current) {
    const filters = {};
    for (const key of ["upstream", "model", "since", "until", "status", "limit"]) filters[key] = params.get(key);
    const page = Number(params.get("page") || "1");
    const data = await api("/conversations", { limit: 50, ...filters, cursor: params.get("cursor") });
    if (!current()) return;
    const rows = data.conversations.map((c) => h("tr", {},
      h("td", { class: "title" }, link("/c/" + enc(c.thread_id), c.title ? clip(c.title, 90) : "(no text)"),
        statusBadges(c),
        h("div", { class: "muted mono" }, c.thread_id)),
      h("td", {}, c.upstreams.join(", ")),
      h("td", {}, c.models.join(", ") || "-"),
      h("td", { class: "num" }, number(c.interactions)),
      h("td", { class: "num" }, number(c.input_tokens), " / ", number(c.output_tokens)),
      h("td", { class: "nowrap" }, when(c.last_activity))));
    const pager = h("nav", { class: "pager" },
      page > 1 ? link(hashOf("/", filters), "« First page") : null,
      h("span", { class: "muted" }, `Page ${page}`),
      data.next_cursor ? link(hashOf("/", { ...filters, cursor: data.next_cursor, page: page + 1 }), "Next page »") : null);
    show(
      h("h1", {}, "Conversations"),
      filtersForm(params),
      rows.length
        ? h("table", { class: "list", id: "conversations" },
          h("thead", {}, h("tr", {}, ["Conversation", "Upstream", "Model", "Turns", "Tokens in / out", "Last activity (UTC)"]
            .map((t) => h("th", {}, t)))),
          h("tbody", {}, rows))
        : h("p", { class: "muted" }, "No conversations match."),
      pager);
  }

  // -- search ------------------------------------------------------------------

  function snippet(segments) {
    return segments.map((s) => (s.hit ? h("mark", {}, s.text) : s.text));
  }

  async function searchView(params, current) {
    const q = params.get("q") || "";
    document.getElementById("search-box").value = q;
    if (!q.trim()) {
      show(h("h1", {}, "Search"), h("p", { class: "muted" }, "Type words in the search box: every one must appear."));
      return;
    }
    const data = await api("/search", { q, cursor: params.get("cursor"), limit: 20 });
    if (!current()) return;
    const hits = data.hits.map((hit) => h("li", { class: "hit" },
      h("div", {}, link(hashOf("/c/" + enc(hit.thread_id), { at: hit.interaction_id }),
        hit.title ? clip(hit.title, 90) : "(no text)"),
        h("span", { class: "muted" }, ` · ${when(hit.created)} · ${hit.upstream} · ${hit.model || "-"}`),
        h("div", { class: "muted mono small" }, hit.interaction_id)),
      hit.input_snippet ? h("div", { class: "snippet" }, h("span", { class: "side" }, "app: "), snippet(hit.input_snippet)) : null,
      hit.output_snippet ? h("div", { class: "snippet" }, h("span", { class: "side" }, "model: "), snippet(hit.output_snippet)) : null));
    show(
      h("h1", {}, "Search: ", h("q", {}, q)),
      hits.length ? h("ol", { class: "hits", id: "hits" }, hits) : h("p", { class: "muted" }, "Nothing holds all of these words."),
      h("nav", { class: "pager" },
        params.get("cursor") ? link(hashOf("/search", { q }), "« First results") : null,
        data.next_cursor ? link(hashOf("/search", { q, cursor: data.next_cursor }), "More results »") : null));
  }

  // -- one conversation: transcript and branch tree ----------------------------

  function childrenOf(nodes) {
    const byParent = new Map();
    const known = new Set(nodes.map((n) => n.id));
    for (const node of nodes) {
      const parent = known.has(node.parent_id) ? node.parent_id : null;
      if (!byParent.has(parent)) byParent.set(parent, []);
      byParent.get(parent).push(node);
    }
    return byParent;
  }

  // Root → `id`, then on down through the newest follow-up at each turn: one branch.
  function branchThrough(id, byId, byParent) {
    const path = [];
    for (let node = byId.get(id); node; node = byId.get(node.parent_id)) path.unshift(node);
    let last = path[path.length - 1];
    while (last && byParent.has(last.id)) {
      const kids = byParent.get(last.id);
      last = kids[kids.length - 1];
      path.push(last);
    }
    return path;
  }

  const IMAGE_TYPES = /^image\/(png|jpeg|gif|webp|bmp|avif)$/;
  const BASE64 = /^[A-Za-z0-9+/=\s]*$/;

  function partView(part) {
    switch (part.kind) {
      case "text":
        return h("div", { class: "text" }, part.text || "");
      case "thought":
        return h("details", { class: "thought" },
          h("summary", {}, part.text ? `Thought (${number(part.text.length)} characters)` : "Thought (signature only)"),
          part.text ? h("div", { class: "text" }, part.text) : null);
      case "function_call":
        return h("div", { class: "call" },
          h("div", { class: "label" }, "→ calls ", h("code", {}, part.name || "?"), part.call_id ? h("span", { class: "muted" }, ` (${part.call_id})`) : null),
          h("pre", {}, json(part.arguments ?? {})));
      case "compaction":
        // What came before it is summarised here: a rebuilt history starts at the newest one.
        return h("details", { class: "compaction" },
          h("summary", {}, part.text ? `Compaction: the conversation before it, summarised (${number(part.text.length)} characters)`
                                     : `Compaction: the conversation before it, compacted by the provider (opaque, ${number((part.signature || "").length)} characters)`),
          part.text ? h("div", { class: "text" }, part.text) : null);
      case "function_result":
        return h("div", { class: "result" + (part.is_error ? " failed" : "") },
          h("div", { class: "label" }, "← result of ", h("code", {}, part.name || part.call_id || "a call"), part.is_error ? " (error)" : ""),
          h("pre", {}, typeof part.result === "string" ? part.result : json(part.result)));
      default:
        return mediaView(part);
    }
  }

  function mediaView(part) {
    const size = part.data ? bytes(Math.floor((part.data.length * 3) / 4)) : null;
    const label = [part.kind, part.mime_type, size].filter(Boolean).join(", ");
    if (part.kind === "image" && part.data && IMAGE_TYPES.test(part.mime_type || "") && BASE64.test(part.data)) {
      const img = h("img", { class: "media", alt: label, title: label });
      img.src = `data:${part.mime_type};base64,${part.data.replace(/\s/g, "")}`;
      return h("figure", {}, img, h("figcaption", { class: "muted" }, label));
    }
    if (part.uri) return h("div", { class: "media-ref" }, `[${label}] `, h("code", {}, part.uri));
    if (["image", "audio", "video", "document"].includes(part.kind)) return h("div", { class: "media-ref" }, `[${label}]`);
    return h("details", { class: "other" }, h("summary", {}, `[${part.kind}]`), h("pre", {}, json(part.native ?? part)));
  }

  function turnView(turn) {
    return h("div", { class: `turn role-${turn.role === "user" ? "user" : "model"}` },
      h("div", { class: "role" }, turn.role),
      turn.parts.map(partView));
  }

  function served(node) {
    const cache = node.served.cache;
    return cache === "hit" ? "replay" : cache === "miss" ? "live (replay miss)" : cache || "-";
  }

  function metaView(node) {
    const usage = node.usage || {};
    const tokens = [`${number(usage.input_tokens)} in`, `${number(usage.output_tokens)} out`];
    if (usage.thought_tokens) tokens.push(`${number(usage.thought_tokens)} thought`);
    if (usage.cached_tokens) tokens.push(`${number(usage.cached_tokens)} cached`);
    const items = [
      ["id", h("code", {}, node.id)],
      ["mode", node.mode],
      ["served", served(node)],
      ["model", node.model || "-"],
      ["status", node.status],
      ["latency", ms(node.served.latency_ms)],
      ["tokens", tokens.join(" / ")],
      ["when", when(node.created) + " UTC"],
      ["upstream", `${node.upstream} (${node.front})`],
    ];
    if (node.provider_id) items.push(["provider id", h("code", {}, node.provider_id)]);
    const cut = node.truncation;
    if (cut) {  // truncation: "auto" left earlier turns out of this call (docs/CONTEXT.md)
      const fit = cut.window ? ` to fit ${number(cut.window)} tokens` : "";
      items.push(["cut", [`${number(cut.turns_dropped)} earlier turns left out${fit}, up to `,
        h("code", {}, cut.resume_at)]]);
    }
    return h("dl", { class: "meta" }, items.map(([k, v]) => h("div", {}, h("dt", {}, k), h("dd", {}, v))));
  }

  function nodeView(node, byParent, path, threadId) {
    const kids = byParent.get(node.id) || [];
    const next = path[path.indexOf(node) + 1];
    const links = h("div", { class: "node-links" },
      link("/raw/" + enc(node.id), `Raw HTTP (${node.served.exchanges})`),
      node.served.stream_events ? link("/events/" + enc(node.id), `Stream timeline (${node.served.stream_events} events)`) : null);
    const fork = kids.length > 1
      ? h("div", { class: "fork" }, `${kids.length} follow-ups branch from here: `,
        kids.map((kid, i) => kid === next
          ? h("strong", { class: "branch current" }, `branch ${i + 1}`)
          : link(hashOf("/c/" + enc(threadId), { at: kid.id }), `branch ${i + 1}`)))
      : null;
    if (node.deleted) {
      return h("section", { class: "node deleted", id: "node-" + node.id },
        h("p", {}, h("code", {}, node.id), ` deleted ${when(node.deleted)} UTC: content erased.`), fork);
    }
    const settings = node.request && Object.keys(node.request).length
      ? h("details", { class: "request" }, h("summary", {}, "Request settings (system instruction, tools, config)"), h("pre", {}, json(node.request)))
      : null;
    return h("section", { class: "node", id: "node-" + node.id },
      metaView(node), links, settings,
      node.input.map(turnView), node.output.map(turnView),
      node.error ? h("div", { class: "error" }, "Error: ", node.error) : null,
      fork);
  }

  function treeView(tree, onPath, selected, threadId) {
    const item = (node) => {
      const label = node.input_text === null
        ? "[deleted]"
        : `${clip(node.input_text, 40) || "(no text)"} → ${clip(node.output_text, 40) || "…"}`;
      const state = node.status === "failed" ? "failed" : node.status === "in_progress" ? "in-progress" : "";
      const classes = ["tree-node", onPath.has(node.id) ? "on-path" : "", node.id === selected ? "selected" : "", state]
        .join(" ").replace(/ +/g, " ").trim();
      return h("li", {},
        h("a", { href: "#" + hashOf("/c/" + enc(threadId), { at: node.id }), class: classes, title: node.id, "data-id": node.id },
          state ? h("span", { class: "badge " + state }, state === "failed" ? "failed" : "in progress") : null, label),
        node.children.length ? h("ul", {}, node.children.map(item)) : null);
    };
    return h("ul", { class: "tree", id: "tree" }, tree.map(item));
  }

  async function conversationView(id, at, current) {
    const data = await api("/conversations/" + enc(id));
    if (!current()) return;
    const byId = new Map(data.nodes.map((n) => [n.id, n]));
    const byParent = childrenOf(data.nodes);
    const selected = byId.has(at) ? at : data.focus;
    const path = branchThrough(selected, byId, byParent);
    const onPath = new Set(path.map((n) => n.id));
    const branches = data.nodes.filter((n) => !byParent.has(n.id)).length;
    const title = path.length && path[0].input ? clip((path[0].input[0]?.parts || []).map((p) => p.text || "").join(""), 80) : "";
    show(
      h("h1", {}, title || "Conversation"),
      h("p", { class: "muted" }, "Thread ", h("code", {}, data.thread_id), ` · ${data.nodes.length} turns · ${branches} branch${branches === 1 ? "" : "es"}`),
      h("div", { class: "conversation" },
        h("aside", { class: "branches" }, h("h2", {}, "Branches"), treeView(data.tree, onPath, selected, data.thread_id)),
        h("div", { class: "transcript", id: "transcript" }, path.map((node) => nodeView(node, byParent, path, data.thread_id)))));
    const target = document.getElementById("node-" + selected);
    if (target && selected !== data.thread_id) requestAnimationFrame(() => target.scrollIntoView({ block: "start" }));
  }

  // -- raw HTTP exchanges ------------------------------------------------------

  function headersTable(headers) {
    if (!headers || !Object.keys(headers).length) return h("p", { class: "muted" }, "(no headers recorded)");
    return h("table", { class: "headers" }, h("tbody", {},
      Object.entries(headers).map(([name, value]) => h("tr", {}, h("th", {}, name), h("td", {}, value)))));
  }

  function bodyView(text) {
    if (text === null || text === undefined) return h("p", { class: "muted" }, "(no body recorded)");
    return h("pre", { class: "body" }, pretty(text));
  }

  async function rawView(id, current) {
    const data = await api(`/interactions/${enc(id)}/exchanges`);
    if (!current()) return;
    const exchanges = data.exchanges.map((ex, i) => h("section", { class: "exchange" },
      h("h2", {}, `${i + 1}. ${ex.method} ${ex.path} → ${ex.status ?? "no answer"}`),
      h("p", { class: "muted" }, [`${when(ex.created)} UTC`, `upstream ${ex.upstream}`, `latency ${ms(ex.latency_ms)}`,
        `cache ${ex.cache || "-"}`, ex.stored ? "stored" : "metadata only"].join(" · ")),
      h("h3", {}, "Request"), headersTable(ex.request_headers), bodyView(ex.request_body),
      h("h3", {}, "Response"), headersTable(ex.response_headers), bodyView(ex.response_body),
      ex.upstream_digest ? h("p", { class: "muted" }, `Sent upstream: a rebuilt request, sha256 ${ex.upstream_digest} (derived data: not stored).`) : null,
      ex.error ? h("p", { class: "error" }, "Error: ", ex.error) : null));
    show(
      h("h1", {}, "Raw HTTP: ", h("code", {}, id)),
      h("p", {}, link(hashOf("/c/" + enc(id), { at: id }), "« Back to the conversation"),
        h("span", { class: "muted" }, " · credentials are never recorded")),
      exchanges.length ? exchanges : h("p", { class: "muted" }, "No recorded exchange (erased, or never stored)."));
  }

  // -- a streamed turn's events ------------------------------------------------

  const PALETTE = ["#2b6cb0", "#2f855a", "#b7791f", "#9b2c2c", "#6b46c1", "#2c7a7b", "#97266d", "#4a5568"];

  function colours(names) {
    const map = new Map();
    for (const name of names) if (!map.has(name)) map.set(name, PALETTE[map.size % PALETTE.length]);
    return map;
  }

  function timeline(data, colour) {
    const width = 900;
    const height = 90;
    const left = 10;
    const span = Math.max(data.last_event_ms || 0, 1);
    const x = (t) => left + ((width - 2 * left) * t) / span;
    const gap = data.largest_gap;
    const gapEnd = gap ? data.events.find((e) => e.seq === gap.before_seq) : null;
    return svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "timeline", role: "img", "aria-label": "Stream events over time" },
      gapEnd ? svg("rect", { x: x(gapEnd.at_ms - gap.gap_ms), y: 12, width: Math.max(x(gapEnd.at_ms) - x(gapEnd.at_ms - gap.gap_ms), 1), height: 40, class: "gap" },
        svg("title", {}, `largest gap: ${ms(gap.gap_ms)}`)) : null,
      svg("line", { x1: left, y1: 52, x2: width - left, y2: 52, class: "axis" }),
      data.events.map((e) => svg("line", { x1: x(e.at_ms), y1: 16, x2: x(e.at_ms), y2: 52, stroke: colour.get(e.event), class: "tick" },
        svg("title", {}, `#${e.seq} ${e.event} at ${ms(e.at_ms)}`))),
      svg("text", { x: left, y: 72, class: "label" }, "0 ms"),
      svg("text", { x: width - left, y: 72, class: "label end" }, ms(span)));
  }

  async function eventsView(id, current) {
    const data = await api(`/interactions/${enc(id)}/events`);
    if (!current()) return;
    const back = h("p", {}, link(hashOf("/c/" + enc(id), { at: id }), "« Back to the conversation"));
    if (!data.events.length) {
      show(h("h1", {}, "Stream timeline: ", h("code", {}, id)), back, h("p", { class: "muted" }, "This turn was not streamed, or its events were erased."));
      return;
    }
    const colour = colours(data.events.map((e) => e.event));
    const gap = data.largest_gap;
    show(
      h("h1", {}, "Stream timeline: ", h("code", {}, id)),
      back,
      h("p", { class: "summary", id: "timeline-summary" },
        `${data.events.length} events over ${ms(data.last_event_ms)}; first event after ${ms(data.first_event_ms)}`,
        gap ? `; largest gap ${ms(gap.gap_ms)} (before event #${gap.before_seq})` : "", "."),
      timeline(data, colour),
      h("ul", { class: "legend" }, [...colour].map(([name, c]) => {
        const swatch = h("span", { class: "swatch" });
        swatch.style.background = c;
        return h("li", {}, swatch, name);
      })),
      h("table", { class: "list events" },
        h("thead", {}, h("tr", {}, ["#", "at", "gap", "event", "size", "data"].map((t) => h("th", {}, t)))),
        h("tbody", {}, data.events.map((e) => h("tr", {},
          h("td", { class: "num" }, e.seq), h("td", { class: "num" }, ms(e.at_ms)), h("td", { class: "num" }, ms(e.gap_ms)),
          h("td", {}, e.event), h("td", { class: "num" }, bytes(e.bytes)),
          h("td", {}, h("details", {}, h("summary", {}, clip(e.data, 70) || "(empty)"), h("pre", {}, pretty(e.data)))))))));
  }

  // -- stats -------------------------------------------------------------------

  // Every day from the first to the last, so that quiet days show as gaps.
  function dayRange(days) {
    if (!days.length) return [];
    const out = [];
    const last = Date.parse(days[days.length - 1] + "T00:00:00Z");
    for (let t = Date.parse(days[0] + "T00:00:00Z"); t <= last && out.length < 3660; t += 86400000) {
      out.push(new Date(t).toISOString().slice(0, 10));
    }
    return out;
  }

  const EMPTY = { requests: 0, input_tokens: 0, output_tokens: 0, errors: 0 };

  function sumBy(rows, key) {
    const out = new Map();
    for (const row of rows) {
      const name = row[key] || "(none)";
      const acc = out.get(name) || { ...EMPTY };
      acc.requests += row.requests;
      acc.input_tokens += row.input_tokens;
      acc.output_tokens += row.output_tokens;
      acc.errors += row.errors;
      out.set(name, acc);
    }
    return out;
  }

  // Vertical bars, one group per label; `series` are stacked.
  function barChart(title, labels, series) {
    const width = 900;
    const height = 220;
    const pad = { left: 60, right: 10, top: 10, bottom: 40 };
    const totals = labels.map((_, i) => series.reduce((sum, s) => sum + s.values[i], 0));
    const max = Math.max(1, ...totals);
    const step = (width - pad.left - pad.right) / Math.max(labels.length, 1);
    const barWidth = Math.max(2, Math.min(40, step * 0.7));
    const y = (v) => pad.top + (height - pad.top - pad.bottom) * (1 - v / max);
    const every = Math.ceil(labels.length / 12);
    const bars = [];
    labels.forEach((label, i) => {
      let base = 0;
      const cx = pad.left + step * i + step / 2;
      for (const s of series) {
        const v = s.values[i];
        if (v > 0) {
          bars.push(svg("rect", { x: cx - barWidth / 2, y: y(base + v), width: barWidth, height: y(base) - y(base + v), class: "bar " + s.cls },
            svg("title", {}, `${label}: ${number(v)} ${s.name}`)));
        }
        base += v;
      }
      if (i % every === 0) bars.push(svg("text", { x: cx, y: height - pad.bottom + 16, class: "label middle" }, label));
    });
    return h("figure", { class: "chart" },
      h("figcaption", {}, title, " ", series.length > 1 ? series.map((s) => h("span", { class: "key " + s.cls }, s.name)) : null),
      svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title },
        svg("line", { x1: pad.left, y1: y(0), x2: width - pad.right, y2: y(0), class: "axis" }),
        svg("text", { x: pad.left - 6, y: y(max) + 4, class: "label end" }, number(max)),
        svg("text", { x: pad.left - 6, y: y(0), class: "label end" }, "0"),
        bars));
  }

  async function statsView(params, current) {
    const since = params.get("since") || "30d";
    const data = await api("/stats", { by: ["day", "model"], since });
    if (!current()) return;
    const sums = sumBy(data.rows, "day");
    const dayLabels = dayRange([...sums.keys()].sort());
    const days = new Map(dayLabels.map((d) => [d, sums.get(d) || EMPTY]));
    const models = sumBy(data.rows, "model");
    const modelLabels = [...models.keys()];
    const form = h("form", { class: "filters" },
      h("label", {}, "Since ", h("input", { name: "since", value: since })), h("button", { type: "submit" }, "Show"));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      location.hash = hashOf("/stats", { since: new FormData(form).get("since") });
    });
    const total = data.total;
    show(
      h("h1", {}, "Stats"),
      form,
      total
        ? h("p", { class: "summary", id: "stats-total" },
          `${number(total.requests)} requests, ${number(total.interactions)} interactions, ${number(total.input_tokens)} tokens in, ` +
          `${number(total.output_tokens)} out, ${number(total.errors)} errors, ${number(total.replay_hits)} replay hits, p50 latency ${ms(total.p50_latency_ms)}.`)
        : h("p", { class: "muted" }, "Nothing recorded in that time."),
      total ? [
        barChart("Requests per day (UTC)", dayLabels, [{ name: "requests", cls: "s1", values: dayLabels.map((d) => days.get(d).requests) }]),
        barChart("Tokens per day (UTC)", dayLabels, [
          { name: "in", cls: "s1", values: dayLabels.map((d) => days.get(d).input_tokens) },
          { name: "out", cls: "s2", values: dayLabels.map((d) => days.get(d).output_tokens) }]),
        barChart("Requests per model", modelLabels, [{ name: "requests", cls: "s1", values: modelLabels.map((m) => models.get(m).requests) }]),
        barChart("Tokens per model", modelLabels, [
          { name: "in", cls: "s1", values: modelLabels.map((m) => models.get(m).input_tokens) },
          { name: "out", cls: "s2", values: modelLabels.map((m) => models.get(m).output_tokens) }]),
        h("table", { class: "list", id: "stats-table" },
          h("thead", {}, h("tr", {}, ["Day", "Model", "Requests", "Interactions", "Tokens in", "Tokens out", "Errors", "p50"].map((t) => h("th", {}, t)))),
          h("tbody", {}, data.rows.map((r) => h("tr", {},
            h("td", {}, r.day), h("td", {}, r.model || "-"), h("td", { class: "num" }, number(r.requests)),
            h("td", { class: "num" }, number(r.interactions)), h("td", { class: "num" }, number(r.input_tokens)),
            h("td", { class: "num" }, number(r.output_tokens)), h("td", { class: "num" }, number(r.errors)),
            h("td", { class: "num" }, ms(r.p50_latency_ms)))))),
      ] : null);
  }

  // -- start -------------------------------------------------------------------

  async function footer() {
    const data = await api("/info");
    const forget = sessionStorage.getItem(TOKEN_KEY)
      ? h("a", { href: "#", onclick: (event) => { event.preventDefault(); sessionStorage.removeItem(TOKEN_KEY); location.reload(); } }, "forget the token")
      : null;
    document.getElementById("footer").replaceChildren(
      append(h("span", {}), [`recall ${data.version} · ${data.mode ? "mode " + data.mode : "viewer only (recall ui)"} · `,
        h("code", {}, data.database), forget ? [" · ", forget] : null]));
  }

  document.getElementById("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const q = document.getElementById("search-box").value.trim();
    if (q) location.hash = hashOf("/search", { q });
  });
  // The viewer can show nothing without a token: Escape does not dismiss the prompt.
  document.getElementById("token-dialog").addEventListener("cancel", (event) => event.preventDefault());
  window.addEventListener("hashchange", route);
  route().then(footer).catch(() => {});
})();
