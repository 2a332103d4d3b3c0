// gmi web page: plain JavaScript, no network beyond this server.
"use strict";

const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of children) node.append(c);
  return node;
};

function thumbs(items) {
  const box = el("div", { class: "thumbs" });
  for (const item of items) {
    box.append(el("figure", {}, el("img", { src: item.url, alt: item.prompt, loading: "lazy" }),
                  el("figcaption", {}, item.prompt)));
  }
  return box;
}

function setupFinder() {
  const drop = document.getElementById("drop");
  const input = document.getElementById("file");
  const previews = document.getElementById("previews");
  const go = document.getElementById("go");
  const status = document.getElementById("status");
  const out = document.getElementById("results");
  let files = [];

  const choose = (list) => {
    files = Array.from(list).filter((f) => f.type.startsWith("image/") || /\.(png|jpe?g|webp|gif|bmp)$/i.test(f.name));
    previews.replaceChildren(...files.map((f) => el("img", { src: URL.createObjectURL(f), alt: f.name })));
    go.disabled = files.length === 0;
    status.textContent = files.length ? `${files.length} image(s) ready` : "";
  };
  drop.addEventListener("click", () => input.click());
  input.addEventListener("change", () => choose(input.files));
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); choose(e.dataTransfer.files); });

  go.addEventListener("click", async () => {
    const form = new FormData();
    for (const f of files) form.append("images", f, f.name);
    form.append("top", "5");
    form.append("together", files.length > 1 ? "true" : "false");
    const prompt = document.getElementById("prompt").value.trim();
    if (prompt) form.append("prompt", prompt);
    go.disabled = true;
    status.className = "status";
    status.textContent = "Identifying…";
    out.replaceChildren();
    try {
      const response = await fetch("/api/identify", { method: "POST", body: form });
      const body = await response.json();
      if (!response.ok) throw new Error(body.error || response.statusText);
      render(body[0]);
      status.textContent = "";
    } catch (err) {
      status.className = "status error";
      status.textContent = `Could not identify: ${err.message}`;
    } finally {
      go.disabled = files.length === 0;
    }
  });

  const PROMPT_LABELS = {
    interrogated: "Guessed prompt (read from the image, may be wrong): ",
    stated: "Your prompt: ",
    embedded: "Prompt embedded in the image: ",
  };

  function render(result) {
    for (const warning of result.warnings || []) {
      out.append(el("div", { class: "notice" }, `Note: ${warning}`));
    }
    out.append(el("div", { class: "prompt", "data-source": result.prompt_source },
      el("strong", {}, PROMPT_LABELS[result.prompt_source] || "Prompt: "), result.prompt || "(none)"));
    for (const line of metadataLines(result)) {
      out.append(el("div", { class: "metadata" }, line));
    }
    if (!result.close_match) {
      out.append(el("div", { class: "no-match", id: "no-match", role: "status" },
        el("strong", {}, "No close match. "),
        "None of this hub's models makes images like this one: every score is below what the " +
        "models' own images score. The closest models are listed below anyway."));
    }
    out.append(el("p", { class: "legend" },
      "Score: how your image compares with each model's own images. 1 = as close as the " +
      "closest of them, 0.5 = like a typical one, 0 = farther than all of them."));
    const cards = el("div", { class: "cards", id: "ranking" });
    for (const r of result.results) {
      const verdict = r.exact_match ? "exact match (checkpoint hash in the image)"
        : r.named_match ? "named in the image (checkpoint file name)"
        : r.close_match ? "close match" : "not a close match";
      const bar = el("div", { class: "bar", title: `score ${r.score.toFixed(2)}` },
        el("span", { style: `width:${(100 * r.score).toFixed(1)}%` }));
      cards.append(el("article", { class: `card${r.close_match ? "" : " far"}`, "data-model": r.model },
        el("div", { class: "rank" }, String(r.rank)),
        el("div", { class: "name" }, r.model),
        el("div", { class: "desc" }, r.description || ""),
        el("div", { class: "score" }, el("strong", {}, r.score.toFixed(2)), ` · ${verdict}`),
        bar,
        thumbs(r.evidence || [])));
    }
    out.append(cards);
    // on a phone the results start below the fold: bring them into view
    out.scrollIntoView({ behavior: "smooth", block: "start" });
  }
}

const WRITER_LABELS = {
  a1111: "AUTOMATIC1111", forge: "Forge", "forge-neo": "Forge Neo", sdnext: "SD.Next",
  comfyui: "ComfyUI", swarmui: "SwarmUI", invokeai: "InvokeAI", novelai: "NovelAI",
  fooocus: "Fooocus", "ruined-fooocus": "Ruined Fooocus", civitai: "Civitai",
  "stability-matrix": "Stability Matrix", tensorart: "TensorArt", easydiffusion: "Easy Diffusion",
  "hf-space": "Hugging Face Space",
};

function reference(ref) {
  const kinds = Object.entries(ref.hashes || {});
  const weight = ref.weight == null ? "" : `:${ref.weight}`;
  const hash = kinds.length ? ` [${kinds[0][0]} ${String(kinds[0][1]).slice(0, 16)}]` : "";
  return `${ref.name || "(unnamed)"}${weight}${hash}`;
}

// what the image's metadata says, in a few short lines (text nodes: never markup)
function metadataLines(result) {
  const lines = [];
  const found = [].concat(result.embedded || []).filter(Boolean);
  for (const meta of found) {
    const made = (meta.models || []).filter((m) => m.role === "checkpoint" || m.role === "refiner");
    lines.push(`${WRITER_LABELS[meta.writer] || meta.writer} metadata` +
      (made.length ? `: made with ${made.map(reference).join(", ")}` : ""));
    if ((meta.loras || []).length) {
      lines.push(`LoRAs / add-ons: ${meta.loras.slice(0, 6).map(reference).join(", ")}` +
        (meta.loras.length > 6 ? ` and ${meta.loras.length - 6} more` : ""));
    }
  }
  for (const p of [].concat(result.provenance || []).filter(Boolean)) {
    lines.push(p.read
      ? `Content Credentials (C2PA): ${p.ai_generated ? "AI-generated, " : ""}made by ${p.claim_generator}`
      : `Content Credentials (C2PA) present, not read: ${p.reason}`);
  }
  for (const r of result.resources || []) {
    lines.push(`Also uses ${r.name} (${r.role}): this hub's ${r.model} (${r.match} match)`);
  }
  return lines;
}

const GALLERY_PAGE = 100;

async function setupGallery() {
  // every model, a page at a time: the count says how many of the hub's are shown
  const box = document.getElementById("gallery");
  const count = el("p", { id: "gallery-count", class: "count" }, "");
  const more = el("button", { id: "gallery-more", type: "button" }, "Show more");
  box.before(count);
  box.after(more);
  let shown = 0;
  async function load() {
    more.disabled = true;
    const response = await fetch(`/api/models?limit=${GALLERY_PAGE}&offset=${shown}`);
    const total = Number(response.headers.get("X-Total-Count") || 0);
    const models = await response.json();
    for (const m of models) {
      const items = m.images.map((url, i) => ({ url, prompt: m.example_prompts[i] || "" }));
      box.append(el("article", { class: "card" }, el("div", { class: "name" }, m.name),
        el("div", { class: "desc" }, `${m.description || ""} · ${m.n_images} images`), thumbs(items)));
    }
    shown += models.length;
    count.textContent = total === 0 ? "No models yet."
      : shown < total ? `Showing ${shown} of ${total} models` : `All ${total} models`;
    more.hidden = shown >= total || models.length === 0;
    more.disabled = false;
  }
  more.addEventListener("click", load);
  await load();
}

function setupAdmin() {
  const form = document.getElementById("submit-form");
  const status = document.getElementById("status");
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const data = new FormData(form);
    const token = data.get("token");
    data.delete("token");
    status.className = "status";
    status.textContent = "Submitting…";
    const response = await fetch("/api/models", { method: "POST", body: data, headers: { Authorization: `Bearer ${token}` } });
    const body = await response.json();
    status.className = response.ok ? "status" : "status error";
    status.textContent = response.ok ? `Added ${body.name} (${body.n_images} images).` : body.error;
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const page = document.body.dataset.page;
  if (page === "finder") setupFinder();
  if (page === "gallery") setupGallery();
  if (page === "admin") setupAdmin();
});
