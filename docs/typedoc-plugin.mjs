// Local typedoc plugin (typedoc.json "plugin"). typedoc builds the page's table of contents from the
// plain text of each heading and drops inline code, so "## Operators (`rxnet/operators`)" is listed as
// "Operators ()". This markdown-it rule splits every code span inside a heading into <code>, its text and
// </code>: the page renders the same, and the table of contents (and the anchor) keep the code's text.

import { Application } from 'typedoc'

/** @param {import('typedoc').Application} app */
export function load(app) {
  // Options are read again after plugins load: set the loader once they are final.
  app.on(Application.EVENT_BOOTSTRAP_END, () => {
    const previous = app.options.getValue('markdownItLoader')
    app.options.setValue('markdownItLoader', (parser) => {
      previous?.(parser)
      headingCode(parser)
    })
  })
}

/** Splits code spans in headings into <code>, text, </code> tokens. */
function headingCode(parser) {
    parser.core.ruler.push('rxnet_heading_code', (state) => {
      const tokens = state.tokens
      for (let i = 1; i < tokens.length; i++) {
        if (tokens[i].type !== 'inline' || tokens[i - 1].type !== 'heading_open' || !tokens[i].children) continue
        tokens[i].children = tokens[i].children.flatMap((t) => {
          if (t.type !== 'code_inline') return [t]
          const open = new state.Token('html_inline', '', 0)
          open.content = '<code>'
          const text = new state.Token('text', '', 0)
          text.content = t.content
          const close = new state.Token('html_inline', '', 0)
          close.content = '</code>'
          return [open, text, close]
        })
      }
    })
}
