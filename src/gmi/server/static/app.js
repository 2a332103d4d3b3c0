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

  function render(result) {
    out.append(el("div", { class: "prompt" }, el("strong", {}, "Prompt: "), result.prompt || "(none)"));
    const cards = el("div", { class: "cards", id: "ranking" });
    const best = Math.max(...result.results.map((r) => r.score), 1e-12);
    for (const r of result.results) {
      // bar: how close to the best match, on a log scale (1 = the best, 1e-4 of it = empty)
      const pct = Math.max(0, 1 + Math.log10(Math.max(r.score, 1e-300) / best) / 4) * 100;
      const bar = el("div", { class: "bar", title: `score ${r.score.toFixed(3)}` }, el("span", { style: `width:${pct.toFixed(1)}%` }));
      cards.append(el("article", { class: "card", "data-model": r.model },
        el("div", { class: "rank" }, String(r.rank)),
        el("div", { class: "name" }, r.model),
        el("div", { class: "desc" }, r.description || ""),
        bar,
        thumbs(r.evidence || [])));
    }
    out.append(cards);
  }
}

async function setupGallery() {
  const box = document.getElementById("gallery");
  const response = await fetch("/api/models");
  const models = await response.json();
  if (!models.length) { box.append(el("p", {}, "No models yet.")); return; }
  for (const m of models) {
    const items = m.images.map((url, i) => ({ url, prompt: m.example_prompts[i] || "" }));
    box.append(el("article", { class: "card" }, el("div", { class: "name" }, m.name),
      el("div", { class: "desc" }, `${m.description || ""} · ${m.n_images} images`), thumbs(items)));
  }
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
