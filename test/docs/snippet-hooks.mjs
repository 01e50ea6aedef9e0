// Resolve hooks for snippet-loader.mjs (see there).
const root = new URL('../../', import.meta.url)
const ENTRIES = {
  rxnet: 'src/index.ts',
  'rxnet/operators': 'operators/index.ts',
  'rxnet/net': 'src/net/index.ts',
}
const bare = (s) => !/^(?:[a-z][a-z0-9+.-]*:|\.{0,2}\/)/i.test(s) && !s.startsWith('#')

export async function resolve(specifier, context, next) {
  const entry = ENTRIES[specifier]
  if (entry !== undefined) return next(new URL(entry, root).href, context)
  if (bare(specifier) && context.parentURL !== undefined && !context.parentURL.startsWith(root.href)) {
    return next(specifier, { ...context, parentURL: new URL('package.json', root).href })
  }
  return next(specifier, context)
}
