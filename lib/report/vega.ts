/**
 * Vega-Lite specs rendered to SVG in Node with vega + vega-lite (the maintained reference implementation),
 * so a report holds finished pictures and needs no script or network to show them.
 */
import { HscrError } from '../errors';

export type VegaLiteSpec = Record<string, unknown>;

interface VegaModules {
  vega: {
    parse(spec: unknown): unknown;
    View: new (runtime: unknown, opts: { renderer: 'none' }) => { toSVG(): Promise<string>; finalize(): void };
  };
  vegaLite: { compile(spec: unknown): { spec: unknown } };
}

// vega and vega-lite ship as ES modules only. tsc (module commonjs) would turn `import()` into require(),
// which Node 20.17 refuses for ES modules, so the dynamic import is made at run time.
const importModule = new Function('specifier', 'return import(specifier)') as (specifier: string) => Promise<unknown>;

let modules: Promise<VegaModules> | undefined;

function loadVega(): Promise<VegaModules> {
  modules ??= Promise.all([importModule('vega'), importModule('vega-lite')]).then(([vega, vegaLite]) => ({ vega, vegaLite }) as VegaModules);
  return modules;
}

/** One Vega-Lite spec as an SVG document string. */
export async function renderVegaLite(spec: VegaLiteSpec): Promise<string> {
  const { vega, vegaLite } = await loadVega();
  let view;
  try {
    view = new vega.View(vega.parse(vegaLite.compile(spec).spec), { renderer: 'none' });
    return await view.toSVG();
  } catch (e) {
    throw new HscrError(`could not render a report plot (${(e as Error).message})`, 'E_INTERNAL', spec.title);
  } finally {
    view?.finalize();
  }
}
