"use strict";
// Pan and zoom for the Graphviz drawings (by moving the SVG viewBox), and links between the
// op tables and the drawings. No libraries: the page must open offline.
(function () {
  const MIN_START = 0.6, MAX_START = 1.2;   // start at a readable scale, not squeezed to fit
  const views = new Map();

  function setup(fig) {
    const svg = fig.querySelector("svg.graph-svg");
    const port = fig.querySelector(".viewport");
    if (!svg || !port) return;
    const base = svg.viewBox.baseVal;
    const all = { x: base.x, y: base.y, w: base.width, h: base.height };
    svg.setAttribute("preserveAspectRatio", "xMidYMid meet");
    let vb = { ...all };
    const scale = () => port.clientWidth / vb.w;   // pixels per SVG unit

    function apply() {
      svg.setAttribute("viewBox", vb.x + " " + vb.y + " " + vb.w + " " + vb.h);
    }
    function frame(s, cx, top) {
      const w = port.clientWidth / s, h = port.clientHeight / s;
      vb = { x: cx - w / 2, y: top, w: w, h: h };
      apply();
    }
    function startView() {
      const s = Math.min(MAX_START, Math.max(MIN_START, port.clientWidth / all.w));
      // small graphs: the viewport shrinks to them instead of leaving white space
      port.style.height = Math.min(window.innerHeight * 0.7, Math.max(160, all.h * s + 16)) + "px";
      const h = port.clientHeight / s;
      frame(s, all.x + all.w / 2, h >= all.h ? all.y - (h - all.h) / 2 : all.y);
    }
    function fit() {
      const s = Math.min(port.clientWidth / all.w, port.clientHeight / all.h);
      const h = port.clientHeight / s;
      frame(s, all.x + all.w / 2, all.y - (h - all.h) / 2);
    }
    function zoom(f, px, py) {   // px, py: the point that stays put, in viewport pixels
      const s = scale(), ns = Math.min(8, Math.max(0.02, s * f));
      const ux = vb.x + px / s, uy = vb.y + py / s;
      vb = { x: ux - px / ns, y: uy - py / ns, w: port.clientWidth / ns, h: port.clientHeight / ns };
      apply();
    }
    function pan(dx, dy) {   // in pixels; returns whether the view moved (else the page scrolls)
      const s = scale(), old = vb.x + "," + vb.y;
      const clamp = (v, lo, hi) => Math.min(Math.max(v, Math.min(lo, hi)), Math.max(lo, hi));
      vb.x = clamp(vb.x + dx / s, all.x - vb.w / 2, all.x + all.w - vb.w / 2);
      vb.y = clamp(vb.y + dy / s, all.y - vb.h / 2, all.y + all.h - vb.h / 2);
      apply();
      return old !== vb.x + "," + vb.y;
    }
    function centreOn(el) {
      const box = el.getBBox();
      const m = svg.getScreenCTM().inverse().multiply(el.getScreenCTM());
      const p = svg.createSVGPoint();
      p.x = box.x + box.width / 2; p.y = box.y + box.height / 2;
      const c = p.matrixTransform(m), s = Math.max(scale(), 1);
      frame(s, c.x, c.y - port.clientHeight / s / 2);
    }

    port.addEventListener("wheel", (e) => {
      const r = port.getBoundingClientRect();
      if (e.ctrlKey || e.metaKey) {
        e.preventDefault();
        zoom(Math.exp(-e.deltaY * 0.002), e.clientX - r.left, e.clientY - r.top);
      } else if (pan(e.shiftKey ? e.deltaY : e.deltaX, e.shiftKey ? 0 : e.deltaY)) {
        e.preventDefault();
      }
    }, { passive: false });
    let drag = null;
    port.addEventListener("pointerdown", (e) => {
      drag = { x: e.clientX, y: e.clientY, moved: false };
      port.setPointerCapture(e.pointerId);
      port.classList.add("dragging");
    });
    port.addEventListener("pointermove", (e) => {
      if (!drag) return;
      const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
      if (Math.abs(dx) + Math.abs(dy) > 2) drag.moved = true;
      pan(-dx, -dy);
      drag.x = e.clientX; drag.y = e.clientY;
    });
    const stop = (e) => {
      const wasClick = drag && !drag.moved;
      drag = null;
      port.classList.remove("dragging");
      if (wasClick && e.type === "pointerup") pick(svg, e);
    };
    port.addEventListener("pointerup", stop);
    port.addEventListener("pointercancel", stop);
    fig.querySelectorAll(".toolbar button").forEach((b) => b.addEventListener("click", () => {
      const act = b.dataset.act;
      if (act === "fit") fit();
      else if (act === "top") startView();
      else zoom(act === "in" ? 1.25 : 0.8, port.clientWidth / 2, port.clientHeight / 2);
    }));
    startView();
    views.set(fig.dataset.key, { centreOn: centreOn });
  }

  function clearHits() {
    document.querySelectorAll(".hit").forEach((el) => el.classList.remove("hit"));
  }

  // a click on an op in a drawing: mark it and its row in the tables
  function pick(svg, e) {
    const target = document.elementFromPoint(e.clientX, e.clientY);
    const node = target && target.closest("g.node");
    if (!node || !svg.contains(node)) return;
    clearHits();
    node.classList.add("hit");
    const row = document.querySelector('tr[data-node="' + node.id + '"]');
    if (row) { row.classList.add("hit"); }
  }

  // a click on a table row: show its op in the drawing
  document.querySelectorAll("tr[data-node]").forEach((row) => row.addEventListener("click", () => {
    const el = document.getElementById(row.dataset.node);
    clearHits();
    row.classList.add("hit");
    if (!el) return;
    el.classList.add("hit");
    const fig = el.closest("figure.graph");
    const view = views.get(fig.dataset.key);
    fig.scrollIntoView({ block: "nearest" });
    if (view) view.centreOn(el);
  }));

  document.querySelectorAll("figure.graph").forEach(setup);
})();
