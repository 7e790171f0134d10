/* Charts on admin change pages: a blocking rule's matches per day, and a saved query's
   params form + Preview. Plain JavaScript over the vendored Chart.js; no build step. */
/* Admin media scripts load in <head>: run once the page is parsed. */
document.addEventListener("DOMContentLoaded", function () {
  "use strict";

  const PALETTE = ["#417690", "#ba2121", "#e0a100", "#2e8540", "#6f42c1", "#17a2b8",
    "#d63384", "#795548", "#607d8b", "#20c997", "#999999"];

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => node.setAttribute(k, v));
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function draw(canvas, type, labels, datasets, horizontal) {
    return new Chart(canvas, {
      type: type,
      data: {
        labels: labels,
        datasets: datasets.map((d, i) => ({
          label: d.label, data: d.data, borderColor: PALETTE[i % PALETTE.length],
          backgroundColor: PALETTE[i % PALETTE.length] + (type === "line" ? "33" : "cc"),
          borderWidth: type === "line" ? 2 : 0, pointRadius: 1,
        })),
      },
      options: { animation: false, responsive: true, maintainAspectRatio: false,
        indexAxis: horizontal ? "y" : "x", plugins: { legend: { display: datasets.length > 1 } },
        scales: { [horizontal ? "x" : "y"]: { beginAtZero: true } } },
    });
  }

  // --- a blocking rule's matches -----------------------------------------------------------

  document.querySelectorAll(".console-mini").forEach((box) => {
    draw(box.querySelector("canvas"), "bar", JSON.parse(box.dataset.labels),
      [{ label: box.dataset.label, data: JSON.parse(box.dataset.values) }]);
    box.dataset.drawn = "true";
  });

  // --- a saved query's params form and preview ------------------------------------------

  const editor = document.getElementById("saved-query-editor");
  if (!editor) return;
  const schema = JSON.parse(editor.dataset.schema);
  const endpointInput = document.getElementById("id_endpoint");
  const windowInput = document.getElementById("id_time_window");
  const paramsInput = document.getElementById("id_params");
  const fieldsBox = editor.querySelector(".sq-fields");
  const stateBox = editor.querySelector(".sq-state");
  const resultBox = editor.querySelector(".sq-result");

  function currentParams() {
    try {
      const value = JSON.parse(paramsInput.value || "{}");
      return value && typeof value === "object" && !Array.isArray(value) ? value : null;
    } catch (e) {
      return null;
    }
  }

  function valueOf(field, input) {
    if (field.kind === "multi") return Array.from(input.selectedOptions).map((o) => o.value);
    const raw = input.value.trim();
    if (raw === "") return undefined;
    if (field.kind === "int") return Number.isInteger(Number(raw)) ? Number(raw) : raw;
    if (field.kind === "bool") return raw === "true";
    if (field.kind === "uuids") return raw.split(/[\s,]+/).filter(Boolean);
    if (field.kind === "json") {
      try { return JSON.parse(raw); } catch (e) { return raw; }
    }
    return raw;
  }

  function writeParams() {
    const params = {};
    fieldsBox.querySelectorAll("[data-param]").forEach((input) => {
      const field = JSON.parse(input.dataset.field);
      const value = valueOf(field, input);
      if (value === undefined || (Array.isArray(value) && !value.length)) return;
      params[field.name] = value;
    });
    paramsInput.value = JSON.stringify(params, null, 2);
  }

  function inputFor(field, value) {
    let input;
    if (field.kind === "choice" || field.kind === "bool" || field.kind === "multi") {
      input = el("select", field.kind === "multi" ? { multiple: "", size: "6" } : {});
      if (field.kind !== "multi") input.append(el("option", { value: "" }, "(default)"));
      const choices = field.kind === "bool" ? ["true", "false"] : field.choices;
      const chosen = Array.isArray(value) ? value.map(String) : [value === undefined ? "" : String(value)];
      choices.forEach((c) => {
        const option = el("option", { value: c }, c);
        option.selected = chosen.includes(String(c));
        input.append(option);
      });
    } else if (field.kind === "json") {
      input = el("textarea", { rows: "3", cols: "60" });
      input.value = value === undefined ? "" : JSON.stringify(value);
    } else {
      input = el("input", { type: field.kind === "int" ? "number" : "text", size: "50" });
      input.value = value === undefined ? "" : Array.isArray(value) ? value.join(",") : String(value);
    }
    input.id = "sq-" + field.name;
    input.dataset.param = field.name;
    input.dataset.field = JSON.stringify(field);
    input.addEventListener("change", writeParams);
    return input;
  }

  function renderFields() {
    fieldsBox.replaceChildren();
    const params = currentParams();
    const fields = schema[endpointInput.value] || [];
    if (params === null) {
      fieldsBox.append(el("p", { class: "errornote" }, "The params above are not a JSON object; fix them to use the form."));
      return;
    }
    const absolute = windowInput.value === "absolute";
    fields.filter((f) => absolute || (f.name !== "start_time" && f.name !== "end_time")).forEach((field) => {
      const row = el("div", { class: "form-row" });
      row.append(el("label", { for: "sq-" + field.name }, field.name));
      row.append(inputFor(field, params[field.name]));
      if (field.help) row.append(el("div", { class: "help" }, field.help));
      fieldsBox.append(row);
    });
  }

  function tableOf(columns, rows) {
    const t = el("table");
    const head = el("tr");
    columns.forEach((c) => head.append(el("th", { scope: "col" }, c)));
    const thead = el("thead");
    thead.append(head);
    t.append(thead);
    const body = el("tbody");
    rows.forEach((r) => {
      const tr = el("tr");
      r.forEach((v, i) => tr.append(el(i ? "td" : "th", i ? {} : { scope: "row" }, v === null ? "–" : String(v))));
      body.append(tr);
    });
    t.append(body);
    const wrap = el("details", { open: "" });
    wrap.append(el("summary", {}, "Numbers as a table"));
    wrap.append(t);
    return wrap;
  }

  // What to draw of each endpoint's answer: labels, datasets and the table.
  function shape(endpoint, data) {
    if (endpoint === "analytics") {
      const metrics = Object.keys(data.summary).filter((m) => m !== "total_errors" && (data.query.metrics || []).includes(m));
      const labels = [];
      const series = new Map();
      data.time_series.forEach((p) => {
        const label = p.timestamp.slice(0, 16).replace("T", " ");
        if (labels[labels.length - 1] !== label) labels.push(label);
        const group = Object.values(p.groups).join(" / ");
        metrics.forEach((m) => {
          const key = group ? `${group}: ${m}` : m;
          if (!series.has(key)) series.set(key, new Map());
          series.get(key).set(label, p.metrics[m]);
        });
      });
      const datasets = Array.from(series.entries()).map(([key, values]) => ({ label: key, data: labels.map((l) => values.has(l) ? values.get(l) : null) }));
      return { type: "line", labels, datasets,
        table: [["Bucket start", ...datasets.map((d) => d.label)], labels.map((l, i) => [l, ...datasets.map((d) => d.data[i])])] };
    }
    const lists = { "geographical-stats": ["countries", (r) => r.country_name, "request_count"],
      "top-routes": ["routes", (r) => `${r.method} ${r.path}`, "request_count"],
      "client-analytics": ["clients", (r) => r.client_id || "(none)", "request_count"],
      "blocking-stats": ["blocked_ips", (r) => r.ip_address, "block_count"] };
    const [key, name, value] = lists[endpoint];
    const rows = data[key];
    return { type: "bar", horizontal: true, labels: rows.map(name), datasets: [{ label: value, data: rows.map((r) => r[value]) }],
      table: [["Name", value], rows.map((r) => [name(r), r[value]])] };
  }

  async function preview() {
    writeParams();
    resultBox.replaceChildren();
    editor.dataset.state = "loading";
    stateBox.textContent = "Running…";
    const token = document.querySelector("input[name=csrfmiddlewaretoken]").value;
    const endpoint = endpointInput.value;
    try {
      const response = await fetch(editor.dataset.previewUrl, {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": token },
        body: JSON.stringify({ endpoint, time_window: windowInput.value, params: currentParams() || {} }),
      });
      const body = await response.json();
      if (!response.ok || !body.success) throw new Error(body.error ? body.error.message : `HTTP ${response.status}`);
      const drawn = shape(endpoint, body.data);
      if (!drawn.labels.length) {
        editor.dataset.state = "empty";
        stateBox.textContent = "No rows in this window.";
        return;
      }
      const box = el("div", { style: "position:relative;height:300px;max-width:900px" });
      const canvas = el("canvas", { role: "img", "aria-label": "Preview chart; numbers in the table below" });
      box.append(canvas);
      resultBox.append(box);
      draw(canvas, drawn.type, drawn.labels, drawn.datasets, drawn.horizontal);
      resultBox.append(tableOf(drawn.table[0], drawn.table[1]));
      editor.dataset.state = "ready";
      stateBox.textContent = "";
    } catch (err) {
      editor.dataset.state = "error";
      stateBox.textContent = "Could not run: " + err.message;
      stateBox.setAttribute("role", "alert");
    }
  }

  endpointInput.addEventListener("change", renderFields);
  windowInput.addEventListener("change", renderFields);
  paramsInput.addEventListener("change", renderFields);
  document.getElementById("sq-preview").addEventListener("click", preview);
  renderFields();
});
