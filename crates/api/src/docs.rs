//! `/api-docs`: a page that lists the operations of `/api-docs/openapi.json`, served from
//! the binary (nothing is fetched from anywhere else).

use axum::response::Html;

const PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Junction API</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;max-width:70em}
h2{margin-top:1.5em;border-bottom:1px solid #ccc}
details{margin:.3em 0}summary{cursor:pointer}
code{background:#f4f4f4;padding:0 .3em}.m{display:inline-block;width:4.5em;font-weight:bold}
pre{background:#f8f8f8;padding:.5em;overflow:auto}
</style></head><body>
<h1>Junction management API</h1>
<p>EMQX's <code>/api/v5</code> paths. The document: <a href="/api-docs/openapi.json">/api-docs/openapi.json</a>.</p>
<div id="ops">Loading…</div>
<script>
fetch('/api-docs/openapi.json').then(r => r.json()).then(doc => {
  const byTag = {};
  for (const [path, item] of Object.entries(doc.paths))
    for (const [method, op] of Object.entries(item))
      (byTag[op.tags[0]] = byTag[op.tags[0]] || []).push([method, path, op]);
  const out = document.getElementById('ops');
  out.textContent = '';
  for (const [tag, ops] of Object.entries(byTag)) {
    const h = document.createElement('h2'); h.textContent = tag; out.appendChild(h);
    for (const [method, path, op] of ops) {
      const d = document.createElement('details');
      const s = document.createElement('summary');
      s.innerHTML = '<span class="m"></span><code></code> ';
      s.children[0].textContent = method.toUpperCase();
      s.children[1].textContent = '/api/v5' + path;
      s.appendChild(document.createTextNode(op.summary));
      d.appendChild(s);
      const pre = document.createElement('pre');
      pre.textContent = JSON.stringify({parameters: op.parameters, requestBody: op.requestBody,
        responses: Object.fromEntries(Object.entries(op.responses).map(([c, r]) => [c, r.description]))}, null, 2);
      d.appendChild(pre);
      out.appendChild(d);
    }
  }
});
</script></body></html>"#;

/// `GET /api-docs`.
pub(crate) async fn page() -> Html<&'static str> {
    Html(PAGE)
}
