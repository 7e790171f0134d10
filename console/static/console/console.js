/* The traffic console: reads the endpoints through /admin/traffic/data/<endpoint>/ (the
   endpoint registry, as the logged-in staff user) and draws each answer as a chart plus
   the same numbers as a table. No build step: plain browser JavaScript and Chart.js. */
(function () {
  "use strict";

  const config = JSON.parse(document.getElementById("console-config").textContent);
  const root = document.getElementById("console-root");
  const PALETTE = ["#417690", "#ba2121", "#e0a100", "#2e8540", "#6f42c1", "#17a2b8",
    "#d63384", "#795548", "#607d8b", "#20c997", "#999999"];
  const PRESETS = { "1h": 3600e3, "24h": 86400e3, "7d": 7 * 86400e3, "30d": 30 * 86400e3 };

  // --- picker -------------------------------------------------------------------------------

  const $ = (id) => document.getElementById(id);
  const picker = { project: $("pick-project"), range: $("pick-range"), start: $("pick-start"),
    end: $("pick-end"), tz: $("pick-tz") };

  function hasOption(select, value) {
    return Array.from(select.options).some((o) => o.value === value);
  }

  function readUrl() {
    const q = new URLSearchParams(location.search);
    const browserZone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    const tz = q.get("tz") || browserZone;
    if (tz && hasOption(picker.tz, tz)) picker.tz.value = tz;
    if (q.get("project") && hasOption(picker.project, q.get("project"))) {
      picker.project.value = q.get("project");
    }
    if (q.get("range") && hasOption(picker.range, q.get("range"))) picker.range.value = q.get("range");
    if (q.get("start")) picker.start.value = q.get("start");
    if (q.get("end")) picker.end.value = q.get("end");
    $("custom-range").hidden = picker.range.value !== "custom";
  }

  function writeUrl() {
    const q = new URLSearchParams();
    if (picker.project.value) q.set("project", picker.project.value);
    q.set("range", picker.range.value);
    if (picker.range.value === "custom") {
      q.set("start", picker.start.value);
      q.set("end", picker.end.value);
    }
    q.set("tz", picker.tz.value);
    history.replaceState(null, "", "?" + q.toString());
    document.querySelectorAll(".console-nav a").forEach((a) => {
      a.search = q.toString();
    });
  }

  // The offset (ms) of zone `tz` at instant `date`: the zone's wall clock read as UTC,
  // minus the instant.
  function zoneOffset(date, tz) {
    const parts = {};
    new Intl.DateTimeFormat("en-US", { timeZone: tz, hourCycle: "h23", year: "numeric",
      month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" })
      .formatToParts(date).forEach((p) => { parts[p.type] = p.value; });
    const wall = Date.UTC(+parts.year, +parts.month - 1, +parts.day, +parts.hour, +parts.minute,
      +parts.second);
    return wall - Math.floor(date.getTime() / 1000) * 1000;
  }

  // A datetime-local value ("2026-12-01T10:00") read on the wall clock of `tz`, as UTC.
  function wallToUtc(value, tz) {
    const guess = Date.parse(value + ":00Z");
    let instant = guess - zoneOffset(new Date(guess), tz);
    instant = guess - zoneOffset(new Date(instant), tz);
    return new Date(instant);
  }

  function selection() {
    const tz = picker.tz.value;
    let start, end;
    if (picker.range.value === "custom") {
      if (!picker.start.value || !picker.end.value) {
        throw new Error("Custom range: choose both From and To.");
      }
      start = wallToUtc(picker.start.value, tz);
      end = wallToUtc(picker.end.value, tz);
    } else {
      end = new Date(Math.ceil(Date.now() / 60000) * 60000);
      start = new Date(end.getTime() - PRESETS[picker.range.value]);
    }
    const iso = (d) => d.toISOString().replace(/\.\d{3}Z$/, "Z");
    const base = { start_time: iso(start), end_time: iso(end) };
    if (picker.project.value) base.project_ids = [picker.project.value];
    return { tz, base };
  }

  // --- data -----------------------------------------------------------------------------

  function csrfToken() {
    const input = document.querySelector("#console-picker input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  async function fetchData(endpoint, params) {
    const response = await fetch(config.dataUrl + endpoint + "/", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify(params),
    });
    let body = null;
    try {
      body = await response.json();
    } catch (e) {
      throw new Error(`${endpoint}: HTTP ${response.status}`);
    }
    if (!response.ok || !body.success) {
      const message = body && body.error ? body.error.message : `HTTP ${response.status}`;
      throw new Error(message);
    }
    return body.data;
  }

  // --- cards: state, chart, table ---------------------------------------------------------

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => node.setAttribute(k, v));
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function card(parent, id, title) {
    const section = el("section", { class: "console-card", id: id, "aria-labelledby": id + "-title" });
    section.append(el("h2", { id: id + "-title" }, title));
    const state = el("p", { class: "console-state loading", role: "status" }, "Loading…");
    section.append(state);
    parent.append(section);
    return section;
  }

  function setState(section, kind, message) {
    const state = section.querySelector(".console-state");
    state.className = "console-state " + kind;
    state.setAttribute("role", kind === "error" ? "alert" : "status");
    state.textContent = message;
    state.hidden = kind === "ready";
    section.dataset.state = kind;
  }

  function fmt(value, unit) {
    if (value === null || value === undefined) return "–";
    if (typeof value !== "number") return String(value);
    if (unit === "%") return (value * 100).toFixed(2) + " %";
    if (unit === "USD") return "$" + value.toFixed(4);
    if (unit === "ms") return Math.round(value).toLocaleString() + " ms";
    return Number.isInteger(value) ? value.toLocaleString() : value.toFixed(2);
  }

  function cell(tag, value, unit) {
    const node = el(tag, {}, fmt(value, unit));
    if (typeof value === "number") node.dataset.value = String(value);
    return node;
  }

  // A table of the numbers behind a chart: `columns` [{label, unit}], `rows` [[label, ...]],
  // `totals` an optional footer row ["Total", ...].
  function table(section, caption, columns, rows, totals) {
    const wrap = el("details", { class: "console-table" });
    wrap.append(el("summary", {}, "Numbers as a table"));
    const t = el("table");
    t.append(el("caption", {}, caption));
    const head = el("tr");
    columns.forEach((c) => head.append(el("th", { scope: "col" }, c.label)));
    const thead = el("thead");
    thead.append(head);
    t.append(thead);
    const tbody = el("tbody");
    rows.forEach((r) => {
      const tr = el("tr");
      r.forEach((v, i) => {
        if (i === 0) {
          const th = el("th", { scope: "row" });
          if (v instanceof Node) th.append(v); else th.textContent = v === null ? "–" : v;
          tr.append(th);
        } else tr.append(cell("td", v, columns[i].unit));
      });
      tbody.append(tr);
    });
    t.append(tbody);
    if (totals) {
      const tr = el("tr");
      totals.forEach((v, i) => tr.append(i === 0 ? el("th", { scope: "row" }, v) : cell("td", v, columns[i].unit)));
      const tfoot = el("tfoot");
      tfoot.append(tr);
      t.append(tfoot);
    }
    wrap.append(t);
    section.append(wrap);
    return t;
  }

  // Draws `datasets` [{label, data}] over `labels`; type "line" or "bar" (horizontal bars
  // for rankings). `onClick(index)` for drill-downs.
  function chart(section, type, labels, datasets, options) {
    const opts = options || {};
    const box = el("div", { class: "console-chart" + (opts.horizontal ? " tall" : "") });
    const canvas = el("canvas", { role: "img", "aria-label": section.querySelector("h2").textContent + " chart; the numbers are in the table below" });
    box.append(canvas);
    section.append(box);
    const instance = new Chart(canvas, {
      type: type,
      data: {
        labels: labels,
        datasets: datasets.map((d, i) => ({
          label: d.label,
          data: d.data,
          borderColor: PALETTE[i % PALETTE.length],
          backgroundColor: PALETTE[i % PALETTE.length] + (type === "line" ? "33" : "cc"),
          borderWidth: type === "line" ? 2 : 0,
          pointRadius: type === "line" && labels.length > 60 ? 0 : 2,
          spanGaps: false,
          yAxisID: d.axis || "y",
        })),
      },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        indexAxis: opts.horizontal ? "y" : "x",
        interaction: { mode: "index", intersect: false },
        plugins: { legend: { display: datasets.length > 1 } },
        scales: opts.scales || {},
        onClick: opts.onClick ? (evt, elements) => {
          if (elements.length) opts.onClick(elements[0].index);
        } : undefined,
      },
    });
    section.dataset.series = String(datasets.length);
    section.dataset.points = String(labels.length);
    return instance;
  }

  function totalsList(section, items) {
    const dl = el("dl", { class: "console-totals" });
    items.forEach(([label, value, unit]) => {
      const div = el("div");
      div.append(el("dt", {}, label));
      div.append(cell("dd", value, unit));
      dl.append(div);
    });
    section.append(dl);
  }

  const timeLabel = (ts) => ts.slice(0, 16).replace("T", " ");

  // Runs `draw(data)` for a card once `promise` resolves; empty when `isEmpty(data)`.
  async function fill(section, promise, isEmpty, draw) {
    try {
      const data = await promise;
      if (isEmpty(data)) {
        setState(section, "empty", "No requests in this range.");
        return;
      }
      draw(data);
      setState(section, "ready", "");
    } catch (err) {
      setState(section, "error", "Could not load: " + err.message);
    }
  }

  // --- pages --------------------------------------------------------------------------

  // One metric series per dataset from an ungrouped analytics answer.
  function seriesCard(parent, id, title, data, metrics) {
    const section = card(parent, id, title);
    const labels = data.time_series.map((p) => timeLabel(p.timestamp));
    const units = data.meta.units || {};
    const datasets = metrics.map(([metric, label]) => ({
      label: label, data: data.time_series.map((p) => p.metrics[metric]),
    }));
    chart(section, "line", labels, datasets, { scales: { y: { beginAtZero: true } } });
    const columns = [{ label: "Bucket start" }, ...metrics.map(([m, label]) => ({ label, unit: unitOf(units[m]) }))];
    const rows = data.time_series.map((p) => [timeLabel(p.timestamp), ...metrics.map(([m]) => p.metrics[m])]);
    table(section, title + " per bucket", columns, rows,
      ["Whole range", ...metrics.map(([m]) => data.summary[m])]);
    setState(section, "ready", "");
  }

  function unitOf(unit) {
    if (unit === "ratio" || unit === "fraction") return "%";
    return unit;
  }

  const OVERVIEW_METRICS = ["total_requests", "error_count", "error_rate", "avg_response_time",
    "p95_response_time", "total_tokens", "total_cost"];

  async function overview(sel) {
    const status = card(root, "overview-totals", "Totals");
    const params = { ...sel.base, timezone: sel.tz, time_bucket: "auto", metrics: OVERVIEW_METRICS };
    let data;
    try {
      data = await fetchData("analytics", params);
    } catch (err) {
      setState(status, "error", "Could not load: " + err.message);
      return;
    }
    if (!data.summary.total_requests) {
      setState(status, "empty", "No requests in this range.");
      return;
    }
    const s = data.summary;
    totalsList(status, [["Requests", s.total_requests], ["Errors", s.error_count],
      ["Error rate", s.error_rate, "%"], ["Mean latency", s.avg_response_time, "ms"],
      ["p95 latency", s.p95_response_time, "ms"], ["Tokens", s.total_tokens],
      ["Cost", s.total_cost, "USD"]]);
    setState(status, "ready", "");
    const grid = el("div", { class: "console-grid" });
    root.append(grid);
    seriesCard(grid, "overview-requests", "Requests and errors", data,
      [["total_requests", "Requests"], ["error_count", "Errors"]]);
    seriesCard(grid, "overview-error-rate", "Error rate", data, [["error_rate", "Error rate"]]);
    seriesCard(grid, "overview-latency", "Latency (ms)", data,
      [["avg_response_time", "Mean"], ["p95_response_time", "p95"]]);
    seriesCard(grid, "overview-tokens", "Tokens", data, [["total_tokens", "Tokens"]]);
    seriesCard(grid, "overview-cost", "Cost (USD)", data, [["total_cost", "Cost"]]);
  }

  const GEO_COLUMNS = [{ label: "Requests" }, { label: "Errors" }, { label: "Error rate", unit: "%" },
    { label: "p95 latency", unit: "ms" }, { label: "Tokens" }, { label: "Share", unit: "%" }];
  const geoRow = (name, r) => [name, r.request_count, r.error_count, r.error_rate,
    r.p95_response_time, r.total_tokens, r.percent];

  async function geography(sel) {
    const drill = el("p", { class: "console-drill" });
    const label = el("label", { for: "geo-country" }, "Country: ");
    const select = el("select", { id: "geo-country" });
    select.append(el("option", { value: "" }, "All countries"));
    drill.append(label, select, el("span", { class: "help" }, " (or click a country's bar)"));
    root.append(drill);
    const area = el("div", { class: "console-grid" });
    root.append(area);

    async function load(country) {
      area.replaceChildren();
      const countries = card(area, "geo-countries", "Countries");
      const regions = card(area, "geo-regions", country ? `Regions of ${country}` : "Regions");
      const cities = card(area, "geo-cities", country ? `Cities of ${country}` : "Cities");
      const params = { ...sel.base, limit: 15 };
      if (country) params.country_code = country;
      const promise = fetchData("geographical-stats", params);
      const empty = (d) => !d.summary.total_requests;
      const totals = (d) => ["All matching requests", d.summary.total_requests, null, null, null, null, null];
      await fill(countries, promise, empty, (d) => {
        if (select.options.length === 1) {
          d.countries.filter((c) => c.country_code).forEach((c) =>
            select.append(el("option", { value: c.country_code }, c.country_name)));
        }
        const names = d.countries.map((c) => c.country_name);
        chart(countries, "bar", names, [{ label: "Requests", data: d.countries.map((c) => c.request_count) }], {
          horizontal: true,
          onClick: (i) => {
            const code = d.countries[i].country_code;
            if (code) { select.value = code; load(code); }
          },
        });
        table(countries, "Countries", [{ label: "Country" }, ...GEO_COLUMNS],
          d.countries.map((c) => geoRow(c.country_name, c)), totals(d));
      });
      await fill(regions, promise, empty, (d) => {
        const names = d.regions.map((r) => `${r.region_name}, ${r.country_code || "?"}`);
        chart(regions, "bar", names, [{ label: "Requests", data: d.regions.map((r) => r.request_count) }], { horizontal: true });
        table(regions, "Regions", [{ label: "Region" }, ...GEO_COLUMNS], d.regions.map((r, i) => geoRow(names[i], r)), totals(d));
      });
      await fill(cities, promise, empty, (d) => {
        const names = d.cities.map((c) => `${c.city}, ${c.country_code || "?"}`);
        chart(cities, "bar", names, [{ label: "Requests", data: d.cities.map((c) => c.request_count) }], { horizontal: true });
        table(cities, "Cities", [{ label: "City" }, ...GEO_COLUMNS], d.cities.map((c, i) => geoRow(names[i], c)), totals(d));
      });
    }
    select.addEventListener("change", () => load(select.value));
    await load("");
  }

  async function routes(sel) {
    const grid = el("div", { class: "console-grid" });
    root.append(grid);
    const busiest = card(grid, "routes-requests", "Busiest routes");
    const slowest = card(grid, "routes-latency", "Latency of those routes (ms)");
    const promise = fetchData("top-routes", { ...sel.base, limit: 15 });
    const empty = (d) => !d.summary.total_requests;
    const names = (d) => d.routes.map((r) => `${r.method} ${r.path}`);
    await fill(busiest, promise, empty, (d) => {
      chart(busiest, "bar", names(d), [{ label: "Requests", data: d.routes.map((r) => r.request_count) }], { horizontal: true });
      table(busiest, "Top routes",
        [{ label: "Route" }, { label: "Requests" }, { label: "Errors" }, { label: "Error rate", unit: "%" },
          { label: "Tokens" }, { label: "Share", unit: "%" }],
        d.routes.map((r, i) => [names(d)[i], r.request_count, r.error_count, r.error_rate, r.total_tokens, r.percent]),
        ["All routes (" + d.summary.total_routes + ")", d.summary.total_requests, null, null, null, null]);
    });
    await fill(slowest, promise, empty, (d) => {
      chart(slowest, "bar", names(d), [
        { label: "Mean", data: d.routes.map((r) => r.avg_response_time) },
        { label: "p95", data: d.routes.map((r) => r.p95_response_time) },
        { label: "p95 time to first token", data: d.routes.map((r) => r.p95_ttft) },
      ], { horizontal: true });
      table(slowest, "Route latency",
        [{ label: "Route" }, { label: "Mean", unit: "ms" }, { label: "p95", unit: "ms" },
          { label: "p99", unit: "ms" }, { label: "p95 TTFT", unit: "ms" }],
        d.routes.map((r, i) => [names(d)[i], r.avg_response_time, r.p95_response_time, r.p99_response_time, r.p95_ttft]));
    });
  }

  async function clients(sel) {
    const grid = el("div", { class: "console-grid" });
    root.append(grid);
    const section = card(grid, "clients-requests", "Busiest clients (API keys)");
    await fill(section, fetchData("client-analytics", { ...sel.base, limit: 15 }),
      (d) => !d.summary.total_requests, (d) => {
        const names = d.clients.map((c) => c.client_id ? c.client_id.slice(0, 8) + "…" : "(none)");
        chart(section, "bar", names, [
          { label: "Requests", data: d.clients.map((c) => c.request_count) },
          { label: "Errors", data: d.clients.map((c) => c.error_count) },
        ], { horizontal: true });
        table(section, "Clients",
          [{ label: "Client" }, { label: "Requests" }, { label: "Errors" }, { label: "Tokens" },
            { label: "Cost", unit: "USD" }, { label: "Cache hit rate", unit: "%" },
            { label: "Mean latency", unit: "ms" }, { label: "Unique IPs" }],
          d.clients.map((c) => [c.client_id || "(none)", c.request_count, c.error_count, c.total_tokens,
            c.total_cost, c.cache_hit_rate, c.avg_response_time, c.unique_ips]),
          ["All clients (" + d.summary.total_clients + ")", d.summary.total_requests, null, null, null, null, null, null]);
      });
  }

  async function blocking(sel) {
    const status = card(root, "blocking-totals", "Totals");
    const grid = el("div", { class: "console-grid" });
    root.append(grid);
    const overTime = card(grid, "blocking-time", "Blocked over time");
    const ips = card(grid, "blocking-ips", "Top blocked IPs");
    const reasons = card(grid, "blocking-reasons", "Reasons");
    const rules = card(grid, "blocking-rules", "Rule effectiveness");
    const promise = fetchData("blocking-stats", { ...sel.base, limit: 10, time_bucket: "auto", timezone: sel.tz });
    const empty = (d) => !d.summary.total_requests;
    await fill(status, promise, empty, (d) => totalsList(status, [
      ["Requests", d.summary.total_requests], ["Blocked", d.summary.total_blocked],
      ["Block rate", d.summary.block_rate, "%"], ["Blocked IPs", d.summary.unique_blocked_ips]]));
    await fill(overTime, promise, empty, (d) => {
      const labels = d.time_series.map((p) => timeLabel(p.timestamp));
      chart(overTime, "line", labels, [
        { label: "Blocked", data: d.time_series.map((p) => p.blocked_requests) },
        { label: "All requests", data: d.time_series.map((p) => p.total_requests), axis: "y1" },
      ], { scales: { y: { beginAtZero: true, title: { display: true, text: "blocked" } },
        y1: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false }, title: { display: true, text: "all" } } } });
      table(overTime, "Blocked per bucket", [{ label: "Bucket start" }, { label: "Blocked" }, { label: "All requests" }],
        d.time_series.map((p) => [timeLabel(p.timestamp), p.blocked_requests, p.total_requests]),
        ["Whole range", d.summary.total_blocked, d.summary.total_requests]);
    });
    await fill(ips, promise, (d) => !d.blocked_ips.length, (d) => {
      chart(ips, "bar", d.blocked_ips.map((r) => r.ip_address), [{ label: "Blocked requests", data: d.blocked_ips.map((r) => r.block_count) }], { horizontal: true });
      table(ips, "Top blocked IPs", [{ label: "IP" }, { label: "Blocked requests" }, { label: "Reasons" }],
        d.blocked_ips.map((r) => [r.ip_address, r.block_count, r.reasons.join(", ")]));
    });
    await fill(reasons, promise, (d) => !d.block_reasons.length, (d) => {
      const names = d.block_reasons.map((r) => r.block_reason || "(none)");
      chart(reasons, "bar", names, [{ label: "Blocked requests", data: d.block_reasons.map((r) => r.count) }], { horizontal: true });
      table(reasons, "Reasons", [{ label: "Reason" }, { label: "Blocked requests" }], d.block_reasons.map((r, i) => [names[i], r.count]));
    });
    await fill(rules, promise, (d) => !d.blocking_rules.length, (d) => {
      const names = d.blocking_rules.map((r) => r.name || r.rule_id.slice(0, 8) + "… (deleted or unknown)");
      chart(rules, "bar", names, [{ label: "Matches", data: d.blocking_rules.map((r) => r.match_count) }], { horizontal: true });
      table(rules, "Rules", [{ label: "Rule" }, { label: "Matches" }, { label: "Targeted requests" }, { label: "Effectiveness", unit: "%" }],
        d.blocking_rules.map((r, i) => {
          let name = names[i];
          if (r.name) {
            name = el("a", { href: config.ruleUrl.replace("RULE", r.rule_id) }, r.name);
          }
          return [name, r.match_count, r.targeted_requests, r.effectiveness];
        }));
    });
  }

  // Per-model series of one metric from a grouped analytics answer.
  function groupedCard(parent, id, title, data, metric, unit) {
    const section = card(parent, id, title);
    const labels = [];
    const byModel = new Map();
    data.time_series.forEach((p) => {
      const label = timeLabel(p.timestamp);
      if (labels[labels.length - 1] !== label) labels.push(label);
      const model = p.groups.model_name === null ? "(none)" : p.groups.model_name;
      if (!byModel.has(model)) byModel.set(model, new Map());
      byModel.get(model).set(label, p.metrics[metric]);
    });
    const models = Array.from(byModel.keys());
    const datasets = models.map((m) => ({ label: m, data: labels.map((l) => byModel.get(m).has(l) ? byModel.get(m).get(l) : null) }));
    chart(section, "line", labels, datasets, { scales: { y: { beginAtZero: true } } });
    table(section, title + " per bucket and model", [{ label: "Bucket start" }, ...models.map((m) => ({ label: m, unit }))],
      labels.map((l, i) => [l, ...datasets.map((d) => d.data[i])]));
    setState(section, "ready", "");
  }

  async function llm(sel) {
    const status = card(root, "llm-totals", "All models");
    const params = { ...sel.base, ...config.llmParams, timezone: sel.tz, time_bucket: "auto" };
    let data;
    try {
      data = await fetchData("analytics", params);
    } catch (err) {
      setState(status, "error", "Could not load: " + err.message);
      return;
    }
    if (!data.summary.total_requests) {
      setState(status, "empty", "No requests in this range.");
      return;
    }
    const s = data.summary;
    totalsList(status, [["Requests", s.total_requests], ["p95 time to first token", s.p95_ttft, "ms"],
      ["Output tokens/s", s.output_tokens_per_second], ["Fallback rate", s.fallback_rate, "%"],
      ["Rescued requests", s.rescued_requests], ["Cache-hit rate", s.cache_hit_rate, "%"],
      ["Truncation rate", s.truncation_rate, "%"], ["Content-filter rate", s.content_filter_rate, "%"]]);
    setState(status, "ready", "");
    const grid = el("div", { class: "console-grid" });
    root.append(grid);
    groupedCard(grid, "llm-requests", "Requests by model", data, "total_requests");
    groupedCard(grid, "llm-ttft", "p95 time to first token (ms)", data, "p95_ttft", "ms");
    groupedCard(grid, "llm-tps", "Output tokens per second", data, "output_tokens_per_second");
    groupedCard(grid, "llm-fallback", "Fallback rate", data, "fallback_rate", "%");
    groupedCard(grid, "llm-cache", "Cache-hit rate", data, "cache_hit_rate", "%");
  }

  const PAGES = { overview, geography, routes, clients, blocking, llm };

  async function render() {
    root.replaceChildren();
    root.dataset.ready = "false";
    let sel;
    try {
      sel = selection();
    } catch (err) {
      const section = card(root, "picker-error", "Time range");
      setState(section, "error", err.message);
      root.dataset.ready = "true";
      return;
    }
    writeUrl();
    await PAGES[config.page](sel);
    root.dataset.ready = "true";
  }

  readUrl();
  picker.range.addEventListener("change", () => {
    $("custom-range").hidden = picker.range.value !== "custom";
  });
  $("pick-apply").addEventListener("click", render);
  ["pick-project", "pick-tz"].forEach((id) => $(id).addEventListener("change", render));
  picker.range.addEventListener("change", () => { if (picker.range.value !== "custom") render(); });
  render();
})();
