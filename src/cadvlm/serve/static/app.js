// The page is a thin client of the API: pick pictures, POST /v1/predict, show what comes back.
"use strict";

const $ = (id) => document.getElementById(id);
const files = {};          // field name -> File
let mode = "sheet";        // "sheet": one picture; "views": front/top/right[/iso]

const REASONS = {
  no_code: "The model's answer holds no code block, so there is no part.",
  parse_error: "The model wrote code that cannot be read as CAD code.",
  build_error: "The code reads fine, but it does not build a solid.",
  invalid_solid: "The code builds a shape, but not a valid solid.",
  empty_solid: "The code builds nothing: the solid is empty.",
  timeout: "It took too long, so it was stopped.",
  crash: "The part builder crashed on this code.",
};

function say(text, kind) {
  const m = $("message");
  m.textContent = text || "";
  m.className = kind || "";
}

function setMode(next) {
  mode = next;
  $("pane-sheet").hidden = next !== "sheet";
  $("pane-views").hidden = next !== "views";
  for (const [id, m] of [["tab-sheet", "sheet"], ["tab-views", "views"]]) {
    $(id).classList.toggle("active", m === next);
    $(id).setAttribute("aria-selected", String(m === next));
  }
  refresh();
}

function ready() {
  if (mode === "sheet") return Boolean(files.image);
  return ["front", "top", "right"].some((v) => files[v]);
}

function refresh() { $("go").disabled = !ready(); }

function take(field, file, label) {
  if (!file) return;
  if (file.type && !file.type.startsWith("image/")) {
    say(`"${file.name}" is not a picture; choose a PNG or JPEG file.`, "error");
    return;
  }
  files[field] = file;
  const img = label.querySelector("img");
  img.src = URL.createObjectURL(file);
  img.hidden = false;
  label.classList.add("filled");
  say("");
  refresh();
}

for (const label of document.querySelectorAll("label.drop")) {
  const field = label.dataset.field;
  const input = label.querySelector("input");
  input.addEventListener("change", () => take(field, input.files[0], label));
  label.addEventListener("dragover", (e) => { e.preventDefault(); label.classList.add("over"); });
  label.addEventListener("dragleave", () => label.classList.remove("over"));
  label.addEventListener("drop", (e) => {
    e.preventDefault();
    label.classList.remove("over");
    take(field, e.dataTransfer.files[0], label);
  });
}
$("tab-sheet").addEventListener("click", () => setMode("sheet"));
$("tab-views").addEventListener("click", () => setMode("views"));

function problem(detail) {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) return detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ");
  return JSON.stringify(detail);
}

async function predict() {
  const form = new FormData();
  const fields = mode === "sheet" ? ["image"] : ["front", "top", "right", "iso"];
  for (const f of fields) if (files[f]) form.append(f, files[f], files[f].name);
  const longest = $("longest").value.trim();
  const budget = $("budget").value.trim();
  if (longest) form.append("longest_mm", longest);
  if (budget) form.append("max_new_tokens", budget);
  if ($("nearest").checked) form.append("candidates", "nearest");
  $("go").disabled = true;
  say("Reading the pictures and writing the code…", "busy");
  let res, data;
  try {
    res = await fetch("/v1/predict", { method: "POST", body: form });
    data = await res.json().catch(() => ({ detail: `${res.status} ${res.statusText}` }));
  } catch (err) {
    say(`Could not reach the server (${err.message}).`, "error");
    refresh();
    return;
  }
  refresh();
  if (!res.ok) {
    const wait = res.headers.get("Retry-After");
    say(`The server could not take this request: ${problem(data.detail)}` +
        (wait ? ` Try again in ${wait} s.` : ""), "error");
    return;
  }
  say("");
  show(data);
}
$("go").addEventListener("click", predict);

function link(name, url) {
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  a.textContent = name;
  a.className = "button";
  return a;
}

function show(r) {
  $("result").hidden = false;
  const ok = r.status === "ok";
  const fmt = (v) => Number(v).toLocaleString(undefined, { maximumFractionDigits: 2 });
  if (ok) {
    const box = r.box_mm.map(fmt).join(" × ");
    $("verdict").textContent = `A valid part: ${r.extrudes} extrude${r.extrudes === 1 ? "" : "s"}, ` +
      `${box} mm, volume ${fmt(r.volume_mm3)} mm³.` + (r.detail ? ` (${r.detail})` : "");
    $("verdict").className = "ok";
  } else {
    const why = REASONS[r.status] || `No valid part (${r.status}).`;
    $("verdict").textContent = why + (r.detail ? ` Details: ${r.detail}` : "");
    $("verdict").className = "error";
  }
  const viewer = $("viewer");
  const has3d = ok && r.files["part.glb"] && customElements.get("model-viewer");
  $("viewer-wrap").hidden = !has3d;
  if (has3d) viewer.src = r.files["part.glb"];
  $("views-fig").hidden = !(ok && r.files["views.png"]);
  if (ok && r.files["views.png"]) $("views-img").src = r.files["views.png"];
  $("input-img").src = r.files["input.png"] || "";
  const dl = $("downloads");
  dl.replaceChildren();
  for (const name of ["part.step", "part.stl", "part.glb", "views.png", "part.py"]) {
    if (r.files[name]) dl.appendChild(link(name, r.files[name]));
  }
  $("code-format").textContent = `(${r.format})`;
  $("code").textContent = r.code != null ? r.code : r.answer;
  const t = r.timings_ms;
  const c = r.candidates;
  const won = c ? c.candidates[c.chosen] : null;
  const picked = !won ? "" : (won.kind === "nearest" ? `the code of training part ${won.train_id}` : "the model's code") +
    ` was kept of ${c.candidates.length} candidates · `;
  $("timings").textContent = picked + `queue ${t.queue} ms · generate ${t.generate} ms (batch of ${r.batch_size}) · ` +
    (c ? `compare ${t.select} ms · ` : "") + `build ${t.build} ms · total ${t.total} ms`;
  $("result").scrollIntoView({ behavior: "smooth", block: "start" });
}

$("copy").addEventListener("click", async () => {
  const text = $("code").textContent;
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const range = document.createRange();
    range.selectNodeContents($("code"));
    const sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
    document.execCommand("copy");
  }
  $("copy").textContent = "Copied";
  setTimeout(() => { $("copy").textContent = "Copy"; }, 1500);
});

fetch("/v1/info").then((r) => r.json()).then((info) => {
  $("model-info").textContent = `Model: ${info.format} code, ${info.layout} pictures of ${info.views.join(", ")} ` +
    `views at ${info.view_size} px.`;
  if (info.layout === "separate") $("tab-sheet").textContent = "One view";
  const near = info.candidates || {};
  $("nearest").checked = near.default === "nearest";
  if (!near.training_pictures) {
    $("nearest").disabled = true;
    $("nearest").parentElement.title = "This model folder carries no training pictures (retrieval.npz).";
  }
}).catch(() => {});

customElements.whenDefined("model-viewer").catch(() => {});
setTimeout(() => {
  if (!customElements.get("model-viewer")) {
    $("model-info").textContent += " The 3-D viewer is not installed (run scripts/setup.sh); views are shown instead.";
  }
}, 3000);
