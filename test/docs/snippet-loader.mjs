// Module hooks for the README / docs snippets (test/docs/snippets.test.ts), registered with
// `node --import <checkout>/test/docs/snippet-loader.mjs snippet.ts` (the one flag: cluster workers inherit it):
//   - tsx compiles TypeScript (registered first, so the hooks below run before its own);
//   - `rxnet`, `rxnet/operators`, `rxnet/net` resolve to this checkout's sources (tsx compiles them),
//     as `paths` in tsconfig.json and the aliases in vitest.config.ts do: no build step;
//   - any other bare specifier imported from outside the checkout (the snippet lives in a temp dir)
//     is resolved as if imported from the checkout's package.json, so `rxjs`, `prom-client`, ... come
//     from its node_modules: the very module instances the sources use.
import 'tsx'
import { register } from 'node:module'

register('./snippet-hooks.mjs', import.meta.url)
