// comfyui-gan-pack: workflows saved while the pack's seeds still had a "control after generate" widget carry
// one more widget value after each seed ("fixed", "randomize", ...). The seeds no longer have that widget (a
// randomised seed re-ran the node on every Run), so such a value would shift every later widget by one. This
// drops it when a saved node has more values than widgets, before the frontend assigns them.
import { app } from "../../scripts/app.js";

const CONTROL_VALUES = new Set(["fixed", "increment", "decrement", "randomize", "increment-wrap"]);
const WIDGET_TYPES = new Set(["INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"]);

function widgetInputs(nodeData) {
  const required = nodeData.input?.required ?? {};
  const optional = nodeData.input?.optional ?? {};
  const order = nodeData.input_order ?? {};
  const names = [...(order.required ?? Object.keys(required)), ...(order.optional ?? Object.keys(optional))];
  return names
    .map((name) => [name, required[name] ?? optional[name]])
    .filter(([, spec]) => spec && (Array.isArray(spec[0]) || WIDGET_TYPES.has(spec[0])) && !spec[1]?.forceInput);
}

export function dropSeedControlValues(values, widgets) {
  if (!Array.isArray(values) || values.length <= widgets.length) return values;
  const out = [];
  let extra = values.length - widgets.length;
  let j = 0;
  for (let i = 0; i < widgets.length && j < values.length; i++) {
    out.push(values[j++]);
    const [, spec] = widgets[i];
    if (extra > 0 && spec[0] === "INT" && spec[1]?.control_after_generate === false && CONTROL_VALUES.has(values[j])) {
      j++;
      extra--;
    }
  }
  while (j < values.length) out.push(values[j++]);
  return out;
}

app.registerExtension({
  name: "comfyui-gan-pack.seedValues",
  beforeRegisterNodeDef(nodeType, nodeData) {
    if (!nodeData?.name?.startsWith("GANPack")) return;
    const widgets = widgetInputs(nodeData);
    if (!widgets.some(([, s]) => s[0] === "INT" && s[1]?.control_after_generate === false)) return;
    const configure = nodeType.prototype.configure;
    nodeType.prototype.configure = function (info) {
      if (info && Array.isArray(info.widgets_values)) {
        info = { ...info, widgets_values: dropSeedControlValues(info.widgets_values, widgets) };
      }
      return configure.call(this, info);
    };
  },
});
