// ComfyUI-SkyReels frontend extension (written against comfyui-frontend-package 1.32.9; works with the classic
// canvas renderer and with "Nodes 2.0" (Vue nodes, setting Comfy.VueNodes.Enabled), which never calls canvas
// onDrawForeground hooks, so nothing here draws on the canvas).
//
// 1. Size widgets: on SkyReels nodes, width / height snap to multiples of 16 and frame counts to 4n+1 as they are
//    edited (the Python side also validates), through the widgets' callbacks (the only hook both renderers call), and
//    the Vue node is told the snapped value so the box shows what will be used.
// 2. Duration line: SkyReels nodes with a frame count (Empty Video Latent, Image To Video, V4 Empty AV Latent, DF
//    Sampler) show "960x544, 97 frames = 4.04 s at 24 fps" in a read-only DOM line (a DOM widget that is never
//    saved nor sent: widgets_values and the prompt are unchanged). fps comes from the node's own fps widget, else
//    from the nearest node downstream with an fps widget (Create Video: read, never hooked), else 24 (SkyReels-V2's
//    native rate). Other nodes' edits are picked up from the frontend's "graphChanged" event.
// 3. Sampler status: the backend sends "step k/n · s/step · ETA" (DF: "window k/n · step ...") as the
//    "skyreels.progress" event, kept in node.skyreelsStatus and shown in the samplers' own DOM line (both renderers),
//    and as ComfyUI progress text (shown by the canvas renderer only, in 1.32). When a run is cancelled or fails,
//    both are cleared on our nodes, so no node keeps showing the last step.
//
// Only the pack's own nodes (comfyClass "SkyReels*") are touched.

import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const EXTENSION = "comfyuiskyreels.NodeHelpers";
const SIZE_MULTIPLE = 16;
const TIME_STRIDE = 4;
const DEFAULT_FPS = 24;
const PROGRESS_EVENT = "skyreels.progress";
const INFO_WIDGET = "skyreels_info";
const TEXT_PREVIEW_WIDGET = "$$node-text-preview"; // the frontend's progress-text widget
const FRAME_WIDGETS = ["frames", "num_frames"];
const LINE_HEIGHT = 18;

export function snapSize(value) {
  const v = Number(value) || SIZE_MULTIPLE;
  return Math.max(SIZE_MULTIPLE, Math.round(v / SIZE_MULTIPLE) * SIZE_MULTIPLE);
}

export function snapFrames(value) {
  // Nearest 4n+1, ties go up (same rule as skyreels_core.shapes.nearest_valid_frames).
  const v = Number(value) || 1;
  if (v <= 1) return 1;
  return Math.floor((v - 1) / TIME_STRIDE + 0.5) * TIME_STRIDE + 1;
}

const SNAPPERS = {
  width: snapSize,
  height: snapSize,
  frames: snapFrames,
  num_frames: snapFrames,
  base_num_frames: snapFrames,
  overlap_history: snapFrames,
};

function isSkyReels(node) {
  return String(node?.comfyClass ?? node?.type ?? "").startsWith("SkyReels");
}

function widget(node, name) {
  return node.widgets?.find((w) => w.name === name);
}

function framesWidget(node) {
  for (const name of FRAME_WIDGETS) {
    const w = widget(node, name);
    if (w) return w;
  }
  return null;
}

function downstreamFps(node) {
  // The fps of the nearest node this one feeds (through any chain of links) that has an fps widget, e.g. the Create
  // Video node that writes the frames: read only, whatever its type, nothing is hooked.
  const graph = node.graph ?? app.graph;
  const seen = new Set([node.id]);
  let frontier = [node];
  while (frontier.length) {
    const next = [];
    for (const current of frontier) {
      for (const output of current.outputs ?? []) {
        for (const linkId of output.links ?? []) {
          const link = graph?.links?.get?.(linkId) ?? graph?.links?.[linkId];
          const target = link ? graph.getNodeById(link.target_id) : null;
          if (!target || seen.has(target.id)) continue;
          seen.add(target.id);
          const fps = widget(target, "fps");
          if (fps && Number(fps.value) > 0) return Number(fps.value);
          next.push(target);
        }
      }
    }
    frontier = next;
  }
  return null;
}

function graphFps(node) {
  const own = widget(node, "fps");
  if (own && Number(own.value) > 0) return Number(own.value);
  return downstreamFps(node) ?? DEFAULT_FPS;
}

function formatFps(fps) {
  return Number.isInteger(fps) ? String(fps) : String(Number(fps.toFixed(3)));
}

function durationText(node) {
  const frames = framesWidget(node);
  if (!frames) return "";
  const fps = graphFps(node);
  const seconds = Number(frames.value) / fps;
  const size = ["width", "height"].map((n) => widget(node, n)?.value).filter((v) => v !== undefined);
  const sizeText = size.length === 2 ? `${size[0]}x${size[1]}, ` : "";
  return `${sizeText}${frames.value} frames = ${seconds.toFixed(2)} s at ${formatFps(fps)} fps`;
}

function isSampler(node) {
  return isSkyReels(node) && String(node.comfyClass ?? node.type).endsWith("Sampler");
}

function vueNodes() {
  try {
    return Boolean(app.extensionManager?.setting?.get?.("Comfy.VueNodes.Enabled"));
  } catch {
    return false;
  }
}

function nativeTextShown(node, status) {
  // Whether the frontend itself shows this status: the canvas renderer draws the backend's progress text in its own
  // box (the $$node-text-preview widget); Vue nodes draw it as a markdown box from frontend 1.58, not in 1.32.
  const native = widget(node, TEXT_PREVIEW_WIDGET);
  if (!native || String(native.value) !== status) return false;
  if (!vueNodes()) return true;
  const box = document.querySelector(`[data-node-id="${node.id}"] .comfy-markdown-content`);
  return Boolean(box && box.textContent.trim() === status.trim());
}

function statusLine(node) {
  // The status goes in our line unless the frontend already shows the same text (one line, never two).
  const status = node.skyreelsStatus ?? "";
  return status && nativeTextShown(node, status) ? "" : status;
}

function infoLines(node) {
  // The duration line, and on samplers the status line.
  const lines = [];
  if (framesWidget(node)) lines.push(node.skyreelsInfo ?? "");
  if (isSampler(node)) lines.push(statusLine(node));
  return lines;
}

function render(node) {
  const el = node.skyreelsInfoElement;
  if (!el) return;
  const lines = infoLines(node);
  el.textContent = lines.join("\n");
  el.title = lines.filter(Boolean).join("\n");
}

function updateInfo(node) {
  if (!framesWidget(node)) return;
  const text = durationText(node);
  if (text === node.skyreelsInfo) return;
  node.skyreelsInfo = text;
  render(node);
  node.setDirtyCanvas?.(true, true);
}

function addInfoWidget(node) {
  // A read-only DOM line: rendered by the canvas (DOM overlay) and by Vue nodes alike; never saved, never sent.
  const el = document.createElement("div");
  el.className = "skyreels-info";
  el.dataset.skyreelsInfo = "";
  Object.assign(el.style, {
    font: "12px sans-serif", color: "#8ab4f8", padding: "2px 8px", whiteSpace: "pre", overflow: "hidden",
    textOverflow: "ellipsis", pointerEvents: "none", boxSizing: "border-box", lineHeight: `${LINE_HEIGHT}px`,
  });
  const height = LINE_HEIGHT * infoLines(node).length + 4;
  const w = node.addDOMWidget(INFO_WIDGET, "skyreels_info", el, {
    serialize: false, hideOnZoom: false, margin: 0, getValue: () => infoLines(node).join("\n"), setValue: () => {},
    getMinHeight: () => height, getMaxHeight: () => height, // margin 0: the canvas gives the lines all of it
  });
  w.serialize = false; // LGraphNode.serialize reads the widget's own flag (graphToPrompt reads options.serialize)
  node.skyreelsInfoElement = el;
}

function syncVueWidget(node, w, value) {
  // Vue nodes keep their own copy of a widget's value, refreshed by the (wrapped) widget callback: call it again
  // after the edit that is in progress, with the snapped value. On the canvas this is a no-op re-run of ours.
  queueMicrotask(() => {
    if (w.value === value && typeof w.callback === "function") w.callback(value);
    node.setDirtyCanvas?.(true, true);
  });
}

function installSnapping(node) {
  for (const w of node.widgets ?? []) {
    const snap = SNAPPERS[w.name];
    const isFrames = FRAME_WIDGETS.includes(w.name);
    if (!snap && !isFrames && w.name !== "fps") continue;
    const previous = w.callback;
    w.callback = function (value, ...rest) {
      if (snap) {
        const snapped = snap(w.value ?? value);
        if (snapped !== w.value || snapped !== value) {
          w.value = snapped;
          syncVueWidget(node, w, snapped);
        }
      }
      const result = previous?.call(this, w.value, ...rest);
      updateInfo(node);
      return result;
    };
  }
}

function fitSize(node) {
  // Keep every widget (the duration line included) inside the node when a saved size is smaller.
  const min = node.computeSize?.();
  if (min && node.size && node.size[1] < min[1]) node.setSize([Math.max(node.size[0], min[0]), min[1]]);
}

function findNode(id) {
  if (id === null || id === undefined) return null;
  const graph = app.graph;
  return graph?.getNodeById(Number(id)) ?? graph?.getNodeById(id) ?? null;
}

function onProgress(event) {
  const detail = event.detail ?? {};
  const node = findNode(detail.node);
  if (!isSkyReels(node)) return;
  node.skyreelsStatus = detail.text;
  node.skyreelsProgress = detail;
  render(node);
  // the progress text of the same step may arrive (and a Vue node redraw it) just after
  for (const ms of [50, 250]) setTimeout(() => render(node), ms);
  node.setDirtyCanvas?.(true, true);
}

function clearStatus() {
  // Cancel or error: no SkyReels node keeps showing the last step (the backend also resets its progress text).
  for (const node of app.graph?._nodes ?? []) {
    if (!isSkyReels(node)) continue;
    if (node.skyreelsStatus !== undefined && node.skyreelsStatus !== null) {
      node.skyreelsStatus = null;
      node.skyreelsProgress = null;
    }
    const text = widget(node, TEXT_PREVIEW_WIDGET);
    if (text && text.value) text.value = "";
    render(node);
    node.setDirtyCanvas?.(true, true);
  }
}

function refreshAll() {
  for (const node of app.graph?._nodes ?? []) if (isSkyReels(node)) updateInfo(node);
}

app.registerExtension({
  name: EXTENSION,
  setup() {
    api.addEventListener(PROGRESS_EVENT, onProgress);
    api.addEventListener("execution_interrupted", clearStatus);
    api.addEventListener("execution_error", clearStatus);
    // a Create Video fps edit (or any other) is picked up without hooking the core node
    api.addEventListener("graphChanged", refreshAll);
  },
  nodeCreated(node) {
    if (!isSkyReels(node)) return;
    installSnapping(node);
    if (framesWidget(node) || isSampler(node)) {
      addInfoWidget(node);
      updateInfo(node);
      render(node);
    }
  },
  loadedGraphNode(node) {
    // Widget values and sizes are restored after nodeCreated: refresh the line and fit it in.
    if (!node.skyreelsInfoElement) return;
    node.skyreelsInfo = undefined;
    updateInfo(node);
    fitSize(node);
  },
  afterConfigureGraph() {
    refreshAll(); // a Create Video node may be configured after ours
  },
});
