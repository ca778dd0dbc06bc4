// ComfyUI-SkyReels frontend extension (written against comfyui-frontend-package 1.32.9).
//
// 1. Size widgets: on SkyReels nodes with width / height / frames widgets, width and height snap to multiples
//    of 16 and frames to 4n+1 as they are edited (the Python side also validates), and the node shows the
//    resulting duration: "81 frames = 3.38 s at 24 fps". fps comes from the node's own fps widget, else from a
//    Create Video node in the graph, else 24 (SkyReels-V2's native rate).
// 2. Sampler status: SkyReelsSampler shows "step k/n · s/step · ETA" in its title bar from the backend's
//    "skyreels.progress" event (the backend also sends it as ComfyUI progress text, which the frontend shows
//    natively inside the node).
//
// Nothing here adds widgets, so saved workflows (widgets_values) are unaffected.

import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const SIZE_MULTIPLE = 16;
const TIME_STRIDE = 4;
const DEFAULT_FPS = 24;
const PROGRESS_EVENT = "skyreels.progress";
const SAMPLER_CLASSES = new Set(["SkyReelsSampler"]);

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

const SNAPPERS = { width: snapSize, height: snapSize, frames: snapFrames };

function widget(node, name) {
  return node.widgets?.find((w) => w.name === name);
}

function graphFps(node) {
  const own = widget(node, "fps");
  if (own && Number(own.value) > 0) return Number(own.value);
  const nodes = node.graph?._nodes ?? app.graph?._nodes ?? [];
  for (const other of nodes) {
    if (other.comfyClass === "CreateVideo" || other.type === "CreateVideo") {
      const fps = widget(other, "fps");
      if (fps && Number(fps.value) > 0) return Number(fps.value);
    }
  }
  return DEFAULT_FPS;
}

function updateInfo(node) {
  const frames = widget(node, "frames");
  if (!frames) return;
  const fps = graphFps(node);
  const seconds = Number(frames.value) / fps;
  const size = ["width", "height"].map((n) => widget(node, n)?.value).filter((v) => v !== undefined);
  const sizeText = size.length === 2 ? `${size[0]}x${size[1]}, ` : "";
  node.skyreelsInfo = `${sizeText}${frames.value} frames = ${seconds.toFixed(2)} s at ${fps} fps`;
  node.setDirtyCanvas?.(true, true);
}

function drawLine(node, ctx, text, color) {
  if (!text || node.flags?.collapsed) return;
  ctx.save();
  ctx.font = "12px Arial";
  ctx.fillStyle = color;
  ctx.textAlign = "left";
  ctx.fillText(text, 8, node.size[1] + 16);
  ctx.restore();
}

function installSizeWidgets(node) {
  if (!Object.keys(SNAPPERS).some((name) => widget(node, name))) return;
  const previous = node.onWidgetChanged;
  node.onWidgetChanged = function (name, value, oldValue, w) {
    const snap = SNAPPERS[name];
    if (snap && w && snap(value) !== value) {
      w.value = snap(value);
    }
    updateInfo(this);
    return previous?.apply(this, arguments);
  };
  const draw = node.onDrawForeground;
  node.onDrawForeground = function (ctx) {
    const result = draw?.apply(this, arguments);
    drawLine(this, ctx, this.skyreelsInfo, "#8ab4f8");
    return result;
  };
  updateInfo(node);
}

function drawTitleStatus(node, ctx, text) {
  // Right-aligned in the title bar, so it never collides with a node placed right below this one.
  if (!text || node.flags?.collapsed) return;
  const titleHeight = globalThis.LiteGraph?.NODE_TITLE_HEIGHT ?? 30;
  ctx.save();
  ctx.font = "11px Arial";
  ctx.fillStyle = "#9fe0a0";
  ctx.textAlign = "right";
  ctx.fillText(text, node.size[0] - 10, -titleHeight / 2 + 4);
  ctx.restore();
}

function installStatusLine(node) {
  const draw = node.onDrawForeground;
  node.onDrawForeground = function (ctx) {
    const result = draw?.apply(this, arguments);
    drawTitleStatus(this, ctx, this.skyreelsStatus);
    return result;
  };
}

function findNode(id) {
  if (id === null || id === undefined) return null;
  const graph = app.graph;
  return graph?.getNodeById(Number(id)) ?? graph?.getNodeById(id) ?? null;
}

function onProgress(event) {
  const detail = event.detail ?? {};
  const node = findNode(detail.node);
  if (!node) return;
  node.skyreelsStatus = detail.text;
  node.skyreelsProgress = detail;
  node.setDirtyCanvas?.(true, true);
}

function refreshAll(graph) {
  for (const other of graph?._nodes ?? []) if (isSkyReels(other)) updateInfo(other);
}

function isCreateVideo(node) {
  return node.comfyClass === "CreateVideo" || node.type === "CreateVideo";
}

function installFpsWatcher(node) {
  // A Create Video node's fps sets the duration shown on SkyReels nodes: refresh them when it changes.
  const previous = node.onWidgetChanged;
  node.onWidgetChanged = function (name) {
    if (name === "fps") refreshAll(this.graph);
    return previous?.apply(this, arguments);
  };
}

function isSkyReels(node) {
  return String(node.comfyClass ?? node.type ?? "").startsWith("SkyReels");
}

app.registerExtension({
  name: "SkyReels.NodeHelpers",
  setup() {
    api.addEventListener(PROGRESS_EVENT, onProgress);
  },
  nodeCreated(node) {
    if (isCreateVideo(node)) installFpsWatcher(node);
    if (!isSkyReels(node)) return;
    installSizeWidgets(node);
    if (SAMPLER_CLASSES.has(node.comfyClass)) installStatusLine(node);
  },
  loadedGraphNode(node) {
    // Widget values are restored after nodeCreated: refresh the duration with the loaded values.
    if (isSkyReels(node)) updateInfo(node);
    if (isCreateVideo(node)) refreshAll(node.graph);
  },
});
