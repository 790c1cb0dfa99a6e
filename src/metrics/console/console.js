// Gregor's console: polls /api/overview, renders it into the tables, and keeps a short history
// of throughput rates and group lag for the charts. No dependencies; text goes in through
// textContent only, since topic, group and client names come from clients.
"use strict";

const POLL_MS = 2000;
const HISTORY = 90; // points per series: three minutes at POLL_MS
const COLORS = ["#2f6fdf", "#e0672b", "#2a9d5c", "#b03fb0", "#c9a227", "#1aa3b8", "#d64545", "#6b6b6b"];

const chartData = { bytes: {}, records: {}, lag: {} };
let previous = null; // the last overview, for rates

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(child == null ? "–" : String(child)));
  }
  return node;
}

function bytes(n) {
  if (n == null) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
}

function number(n) {
  if (n == null) return "–";
  if (Math.abs(n) >= 1e6) return (n / 1e6).toFixed(1) + "M";
  if (Math.abs(n) >= 1e4) return (n / 1e3).toFixed(1) + "k";
  return Number.isInteger(n) ? String(n) : n.toFixed(1);
}

function renderBrokers(o) {
  const body = document.querySelector("#brokers tbody");
  body.replaceChildren(...o.brokers.map(b => {
    const roles = [];
    if (b.id === o.controller_id) roles.push("controller");
    if (b.id === o.node_id) roles.push("this node");
    return el("tr", { "data-broker-id": b.id },
      el("td", { class: "num" }, b.id),
      el("td", {}, b.endpoints.join(", ")),
      el("td", {}, b.rack),
      el("td", {}, roles.join(", ")),
      el("td", { class: b.fenced ? "bad" : "good" }, b.fenced ? "fenced" : "serving"));
  }));
}

function renderTopics(o) {
  const showInternal = document.getElementById("show-internal").checked;
  const blocks = o.topics.filter(t => showInternal || !t.internal).map(t => {
    const rows = t.partitions.map(p => {
      const underReplicated = p.isr.length < p.replicas.length;
      return el("tr", { "data-topic": t.name, "data-partition": p.partition },
        el("td", { class: "num" }, p.partition),
        el("td", { class: "num leader" + (p.leader < 0 ? " bad" : "") }, p.leader < 0 ? "none" : p.leader),
        el("td", { class: "replicas" }, p.replicas.join(", ")),
        el("td", { class: "isr" + (underReplicated ? " bad" : "") }, p.isr.join(", ")),
        el("td", { class: "num size" }, bytes(p.size_bytes)),
        el("td", { class: "num log-start" }, p.log_start_offset),
        el("td", { class: "num log-end" }, p.log_end_offset),
        el("td", { class: "num high-watermark" }, p.high_watermark));
    });
    const total = t.partitions.reduce((sum, p) => sum + (p.size_bytes || 0), 0);
    return el("div", { class: "topic", "data-topic": t.name },
      el("h3", {}, t.name, el("span", { class: "meta" }, `${t.partitions.length} partition${t.partitions.length === 1 ? "" : "s"}, ${bytes(total)}${t.internal ? ", internal" : ""}`)),
      el("table", {},
        el("thead", {}, el("tr", {}, ...["partition", "leader", "replicas", "ISR", "size", "log start", "log end", "high watermark"].map(h => el("th", {}, h)))),
        el("tbody", {}, ...rows)));
  });
  document.getElementById("topics").replaceChildren(...(blocks.length ? blocks : [el("p", { class: "empty" }, "No topics.")]));
}

function groupLag(g) {
  return g.offsets.reduce((sum, p) => sum + (p.lag || 0), 0);
}

function renderGroups(o) {
  const blocks = o.groups.map(g => {
    const owner = {};
    for (const m of g.members) for (const [topic, partitions] of m.assignment) for (const p of partitions) owner[topic + "/" + p] = m.client_id || m.member_id;
    const members = g.members.length
      ? el("ul", { class: "members" }, ...g.members.map(m => el("li", { "data-member-id": m.member_id },
          el("b", {}, m.client_id || "(no client id)"), ` ${m.client_host} `, el("code", {}, m.member_id),
          m.assignment.length ? ` → ${m.assignment.map(([t, ps]) => `${t} [${ps.join(", ")}]`).join("; ")}` : "")))
      : el("p", { class: "empty" }, "No members.");
    const rows = g.offsets.map(p => el("tr", { "data-group": g.group_id, "data-topic": p.topic, "data-partition": p.partition },
      el("td", {}, p.topic),
      el("td", { class: "num" }, p.partition),
      el("td", { class: "num committed" }, p.committed),
      el("td", { class: "num high-watermark" }, p.high_watermark),
      el("td", { class: "num lag" + (p.lag > 0 ? " warn" : "") }, p.lag),
      el("td", { class: "owner" }, owner[p.topic + "/" + p.partition])));
    return el("div", { class: "group", "data-group": g.group_id },
      el("h3", {}, g.group_id, el("span", { class: "meta" }, `${g.state}${g.protocol_type ? ", " + g.protocol_type : ""}, total lag `, el("span", { class: "total-lag" }, groupLag(g)))),
      members,
      rows.length
        ? el("table", {},
            el("thead", {}, el("tr", {}, ...["topic", "partition", "committed", "high watermark", "lag", "member"].map(h => el("th", {}, h)))),
            el("tbody", {}, ...rows))
        : el("p", { class: "empty" }, "No committed offsets."));
  });
  document.getElementById("groups").replaceChildren(...(blocks.length ? blocks : [el("p", { class: "empty" }, "No groups this node coordinates.")]));
}

function push(chart, name, t, value) {
  const series = chart[name] || (chart[name] = []);
  series.push([t, value]);
  if (series.length > HISTORY) series.shift();
}

function record(o) {
  const t = o.time_ms;
  if (previous && t > previous.time_ms) {
    const seconds = (t - previous.time_ms) / 1000;
    const rate = key => Math.max(0, o.throughput[key] - previous.throughput[key]) / seconds;
    push(chartData.bytes, "in", t, rate("bytes_in"));
    push(chartData.bytes, "out", t, rate("bytes_out"));
    push(chartData.records, "in", t, rate("records_in"));
    push(chartData.records, "out", t, rate("records_out"));
  }
  const groups = new Set(o.groups.map(g => g.group_id));
  for (const g of o.groups) push(chartData.lag, g.group_id, t, groupLag(g));
  for (const name of Object.keys(chartData.lag)) if (!groups.has(name)) delete chartData.lag[name];
  previous = o;
}

// 1, 2 or 5 times a power of ten, at least `v`: a scale whose grid lines read easily.
function roundUp(v) {
  const power = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 5, 10].map(m => m * power).find(n => n >= v);
}

// Lines over a shared time axis, from 0 to the largest value shown.
function draw(id, chart, format) {
  const canvas = document.getElementById("chart-" + id);
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || canvas.width, height = canvas.clientHeight || canvas.height;
  canvas.width = width * ratio;
  canvas.height = height * ratio;
  const ctx = canvas.getContext("2d");
  ctx.scale(ratio, ratio);
  ctx.clearRect(0, 0, width, height);
  const pad = { left: 52, right: 8, top: 8, bottom: 18 };
  const names = Object.keys(chart);
  const points = names.flatMap(n => chart[n]);
  const max = roundUp(Math.max(1, ...points.map(p => p[1])));
  const end = points.length ? Math.max(...points.map(p => p[0])) : Date.now();
  // From the oldest point kept (at most HISTORY polls back), but never under 10 polls wide.
  const first = points.length ? Math.min(...points.map(p => p[0])) : end;
  const start = Math.min(end - 10 * POLL_MS, first);
  const x = t => pad.left + (t - start) / (end - start) * (width - pad.left - pad.right);
  const y = v => height - pad.bottom - v / max * (height - pad.top - pad.bottom);

  ctx.strokeStyle = "#e2e5ea";
  ctx.fillStyle = "#6b7280";
  ctx.font = "11px system-ui, sans-serif";
  ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const v = max * i / 4, yy = Math.round(y(v)) + 0.5;
    ctx.beginPath(); ctx.moveTo(pad.left, yy); ctx.lineTo(width - pad.right, yy); ctx.stroke();
    ctx.fillText(format(v), 4, yy + 4);
  }
  const span = Math.round((end - start) / 1000);
  ctx.fillText(span >= 120 ? `last ${Math.round(span / 60)} min` : `last ${span} s`, pad.left, height - 4);

  const legend = document.getElementById("legend-" + id);
  legend.replaceChildren();
  let drawn = 0;
  names.forEach((name, i) => {
    const series = chart[name], color = COLORS[i % COLORS.length];
    ctx.strokeStyle = color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    series.forEach(([t, v], j) => (j ? ctx.lineTo(x(t), y(v)) : ctx.moveTo(x(t), y(v))));
    ctx.stroke();
    drawn += series.length;
    const last = series.length ? series[series.length - 1][1] : null;
    legend.append(el("span", { style: `--color: ${color}` }, `${name} ${last == null ? "–" : format(last)}`));
  });
  canvas.dataset.points = drawn;
}

function render(o) {
  document.getElementById("cluster").textContent = `cluster ${o.cluster_id}`;
  document.getElementById("node").textContent = o.node_id;
  renderBrokers(o);
  renderTopics(o);
  renderGroups(o);
  record(o);
  draw("bytes", chartData.bytes, bytes);
  draw("records", chartData.records, number);
  draw("lag", chartData.lag, number);
}

async function poll() {
  const status = document.getElementById("status");
  try {
    const response = await fetch("/api/overview", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    render(await response.json());
    status.textContent = `updated ${new Date().toLocaleTimeString()}`;
    status.className = "status good";
    document.body.dataset.updates = Number(document.body.dataset.updates || 0) + 1;
  } catch (e) {
    status.textContent = `cannot reach the broker: ${e.message}`;
    status.className = "status bad";
  }
  setTimeout(poll, POLL_MS);
}

document.getElementById("show-internal").addEventListener("change", () => previous && renderTopics(previous));
poll();
