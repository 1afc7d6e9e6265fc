// Every formula of the built HTML, typeset by MathJax itself (mathjax-full, TeX input): a formula
// that MathJax cannot read (an unknown macro, an unbalanced brace, a control character) is an
// error here instead of red text in a reader's browser.
//   usage: node check_math.js <_build/html>   (exit 1 and a list when a formula fails)
const fs = require("fs");
const path = require("path");
const { mathjax } = require("mathjax-full/js/mathjax.js");
const { TeX } = require("mathjax-full/js/input/tex.js");
const { AllPackages } = require("mathjax-full/js/input/tex/AllPackages.js");
const { liteAdaptor } = require("mathjax-full/js/adaptors/liteAdaptor.js");
const { RegisterHTMLHandler } = require("mathjax-full/js/handlers/html.js");
const { SerializedMmlVisitor } = require("mathjax-full/js/core/MmlTree/SerializedMmlVisitor.js");
const { STATE } = require("mathjax-full/js/core/MathItem.js");

const adaptor = liteAdaptor();
RegisterHTMLHandler(adaptor);
const tex = new TeX({ packages: AllPackages.filter((p) => p !== "bussproofs"), formatError: (jax, err) => { throw err; } });
const doc = mathjax.document("", { InputJax: tex });
const visitor = new SerializedMmlVisitor();

function unescape(s) {
  return s.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&amp;/g, "&");
}

function* htmlFiles(dir) {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory() && !["_static", "_sources", "_images"].includes(entry.name)) yield* htmlFiles(p);
    else if (entry.name.endsWith(".html")) yield p;
  }
}

const root = process.argv[2];
const failures = [];
let count = 0;
for (const file of htmlFiles(root)) {
  const html = fs.readFileSync(file, "utf8");
  // myst's dollarmath/amsmath: <span class="math ...">\(...\)</span>, <div class="math ...">\[...\]</div>
  const re = /<(span|div) class="math[^"]*">([\s\S]*?)<\/\1>/g;
  let m;
  while ((m = re.exec(html))) {
    let src = unescape(m[2]).trim();
    const display = src.startsWith("\\[");
    src = src.replace(/^\\\(|\\\)$/g, "").replace(/^\\\[|\\\]$/g, "");
    count++;
    try {
      const node = doc.convert(src, { display, end: STATE.COMPILED });
      const mml = visitor.visitTree(node);
      if (mml.includes("<merror")) throw new Error("merror");
    } catch (err) {
      failures.push(`${path.relative(root, file)}: ${err.message} in ${JSON.stringify(src.slice(0, 120))}`);
    }
  }
}
console.log(`${count} formulas typeset, ${failures.length} failed`);
if (failures.length) { console.log(failures.join("\n")); process.exit(1); }
