// Run Python under the real MicroPython interpreter (WebAssembly build) and exit non-zero on any exception.
//
//   node tests/mp/run.mjs --script bench/bench_x.py [script args...]   # run a file as __main__
//   node tests/mp/run.mjs --cases tests/mpcases/codec_cases.py [--json out.json] [--only case_a,case_b]
//   node tests/mp/run.mjs -c "import tunion.record; print(tunion.record.__name__)"
//
// Options (before the mode): --heap 16M (Python heap; the wasm heap grows past it, so measure memory with
// gc.mem_alloc() deltas, not by waiting for MemoryError), --pystack WORDS, --firmware DIR (use DIR instead of
// firmware/, e.g. a tree of .mpy files from mpy-cross), --quiet (no PASS lines in --cases mode).
//
// The VM gets a copy of the repository's firmware/, tests/ and bench/ trees under /mp/<same path> (MEMFS),
// and of the installed third-party board packages in HOST_PACKAGES (from the venv's site-packages, as the
// deploy step takes them from PyPI; never committed) under /mp/lib;
// sys.path = [<script dir>,] /mp/tests, /mp/firmware, .frozen, /mp/lib; the working directory is /mp.
// The package's own `micropython.mjs file.py` always exits 0 and prints its whole minified source on a JS
// error; this runner catches everything and reports a short traceback instead.
//
// Exit status: 0 all good; 1 a Python exception (or any case failed); 2 bad usage or a runner fault;
// n for sys.exit(n).
import fs from "node:fs";
import path from "node:path";
import url from "node:url";
import { createRequire } from "node:module";

const HERE = path.dirname(url.fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "..", "..");
const VM_ROOT = "/mp";
const MIRRORED = ["firmware", "tests", "bench"];
const SKIP_DIRS = new Set(["__pycache__", ".pytest_cache", ".hypothesis", "node_modules", ".git"]);
const MAX_FILE = 4 * 1024 * 1024;
const HOST_PACKAGES = ["adafruit_pn532"]; // pinned in requirements.txt; drivers/pn532.py subclasses it

// <venv>/lib/python3.X/site-packages/<name> for each host package found ($VIRTUAL_ENV, else ROOT/.venv).
function hostPackages() {
  const venv = process.env.VIRTUAL_ENV || path.join(ROOT, ".venv");
  const found = [];
  let libs = [];
  try {
    libs = fs.readdirSync(path.join(venv, "lib")).filter((d) => d.startsWith("python"));
  } catch {
    return found;
  }
  for (const name of HOST_PACKAGES) {
    for (const py of libs) {
      const dir = path.join(venv, "lib", py, "site-packages", name);
      if (fs.existsSync(dir)) {
        found.push({ name, dir });
        break;
      }
    }
  }
  return found;
}

function usage(msg) {
  process.stderr.write(`run.mjs: ${msg}\n`);
  process.stderr.write(
    "usage: node tests/mp/run.mjs [--heap 16M] [--pystack N] [--firmware DIR] [--quiet]\n" +
      "         (--script FILE [ARGS...] | --cases FILE_OR_MODULE [--json OUT] [--only a,b] | -c CODE)\n",
  );
  process.exit(2);
}

function parseSize(text) {
  const m = /^(\d+)([kKmM]?)$/.exec(text);
  if (!m) usage(`bad size ${text}`);
  const mult = { "": 1, k: 1024, K: 1024, m: 1 << 20, M: 1 << 20 }[m[2]];
  return parseInt(m[1], 10) * mult;
}

function parseArgs(argv) {
  const opt = { heap: 16 << 20, pystack: 16384, firmware: null, quiet: false, mode: null, target: null,
    args: [], json: null, only: null };
  let i = 0;
  while (i < argv.length) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      i += 1;
      return argv[i];
    };
    if (a === "--heap") opt.heap = parseSize(next());
    else if (a === "--pystack") opt.pystack = parseInt(next(), 10);
    else if (a === "--firmware") opt.firmware = path.resolve(next());
    else if (a === "--quiet") opt.quiet = true;
    else if (a === "--json") opt.json = path.resolve(next());
    else if (a === "--only") opt.only = next().split(",").filter((s) => s);
    else if (a === "--script" || a === "--cases" || a === "-c") {
      if (opt.mode) usage("only one of --script, --cases, -c");
      opt.mode = a.replace(/^-+/, "");
      opt.target = next();
      if (opt.mode === "script") {
        opt.args = argv.slice(i + 1); // everything after the script belongs to it
        break;
      }
    } else usage(`unknown argument ${a}`);
    i += 1;
  }
  if (!opt.mode) usage("nothing to run");
  return opt;
}

// ---- the VM's filesystem -------------------------------------------------------------------------------

function copyTree(FS, hostDir, vmDir) {
  let entries;
  try {
    entries = fs.readdirSync(hostDir, { withFileTypes: true });
  } catch {
    return 0;
  }
  FS.mkdirTree(vmDir);
  let n = 0;
  for (const e of entries) {
    if (SKIP_DIRS.has(e.name)) continue;
    const h = path.join(hostDir, e.name);
    const v = vmDir + "/" + e.name;
    let st;
    try {
      st = fs.statSync(h); // follows symlinks
    } catch {
      continue;
    }
    if (st.isDirectory()) n += copyTree(FS, h, v);
    else if (st.isFile() && st.size <= MAX_FILE) {
      FS.writeFile(v, fs.readFileSync(h));
      n += 1;
    }
  }
  return n;
}

// A path as given, else relative to the repository root (so the runner works from any directory).
function hostPath(p) {
  const here = path.resolve(p);
  if (fs.existsSync(here) || path.isAbsolute(p)) return here;
  return path.resolve(ROOT, p);
}

function vmPathOf(hostPath) {
  const rel = path.relative(ROOT, path.resolve(hostPath));
  if (rel.startsWith("..") || path.isAbsolute(rel)) return null;
  return VM_ROOT + "/" + rel.split(path.sep).join("/");
}

// ---- output --------------------------------------------------------------------------------------------

function makeSink(stream) {
  let buf = [];
  const flush = () => {
    if (buf.length) {
      stream.write(Buffer.from(buf));
      buf = [];
    }
  };
  const put = (bytes) => {
    for (const c of bytes) {
      buf.push(c);
      if (c === 10 || buf.length >= 8192) flush();
    }
  };
  return { put, flush };
}

function pyStr(s) {
  return JSON.stringify(s); // a JSON string literal is a valid Python string literal for our paths and names
}

// The PythonError message is the traceback text; give back a short, readable one.
function describe(err) {
  if (err && err.name === "PythonError") return String(err.message).replace(/\s+$/, "");
  const first = String((err && err.stack) || err).split("\n").slice(0, 6);
  return first.map((l) => (l.length > 300 ? l.slice(0, 300) + "..." : l)).join("\n");
}

function exitCodeOfSystemExit(err, stderr) {
  // err.message ends with "SystemExit: <arg>" or "SystemExit"
  const lines = String(err.message).trim().split("\n");
  const last = lines[lines.length - 1];
  const m = /^SystemExit(?::\s*(.*))?$/.exec(last);
  if (!m || m[1] === undefined || m[1] === "None" || m[1] === "") return 0;
  if (/^-?\d+$/.test(m[1])) return parseInt(m[1], 10) & 0xff;
  stderr.put(Buffer.from(m[1] + "\n"));
  return 1;
}

// ---- main ----------------------------------------------------------------------------------------------

async function main() {
  const opt = parseArgs(process.argv.slice(2));
  const require = createRequire(import.meta.url);
  let modPath;
  try {
    modPath = require.resolve("@micropython/micropython-webassembly-pyscript/micropython.mjs", { paths: [ROOT] });
  } catch {
    process.stderr.write("run.mjs: @micropython/micropython-webassembly-pyscript is not installed: run `npm ci`\n");
    process.exit(2);
  }
  const { loadMicroPython } = await import(url.pathToFileURL(modPath).href);
  const out = makeSink(process.stdout);
  const err = makeSink(process.stderr);
  const mp = await loadMicroPython({
    heapsize: opt.heap,
    pystack: opt.pystack,
    linebuffer: false,
    stdout: (b) => out.put(b),
    stderr: (b) => err.put(b),
  });
  const FS = mp.FS;
  for (const d of MIRRORED) {
    const host = d === "firmware" && opt.firmware ? opt.firmware : path.join(ROOT, d);
    copyTree(FS, host, VM_ROOT + "/" + d);
  }
  for (const p of hostPackages()) copyTree(FS, p.dir, VM_ROOT + "/lib/" + p.name);
  FS.mkdirTree("/tmp");

  const paths = [VM_ROOT + "/tests", VM_ROOT + "/firmware", ".frozen", VM_ROOT + "/lib"];
  let status = 0;
  const run = (code) => {
    mp.runPython(code);
  };
  try {
    if (opt.mode === "script") {
      const host = hostPath(opt.target);
      if (!fs.existsSync(host)) usage(`no such script ${opt.target}`);
      let vm = vmPathOf(host);
      if (vm === null) {
        vm = "/ext/" + path.basename(host); // outside the repository: only the file itself
        FS.mkdirTree("/ext");
        FS.writeFile(vm, fs.readFileSync(host));
      } else {
        copyTree(FS, path.dirname(host), vm.slice(0, vm.lastIndexOf("/"))); // the script's folder too
      }
      const dir = vm.slice(0, vm.lastIndexOf("/"));
      const argv = [opt.target, ...opt.args].map(pyStr).join(", ");
      run(
        `import sys, os\nsys.path[:] = [${[dir, ...paths].map(pyStr).join(", ")}]\n` +
          `sys.argv[:] = [${argv}]\nos.chdir(${pyStr(VM_ROOT)})\n`,
      );
      const src = fs.readFileSync(host, "utf8");
      mp.globals.set("_runner_src", src);
      run(
        `_runner_code = compile(_runner_src, ${pyStr(vm.startsWith(VM_ROOT + "/") ? vm.slice(VM_ROOT.length + 1) : host)}, "exec")\n` +
          `del _runner_src\nexec(_runner_code, {"__name__": "__main__", "__file__": ${pyStr(vm)}})`,
      );
    } else if (opt.mode === "c") {
      run(`import sys, os\nsys.path[:] = [${paths.map(pyStr).join(", ")}]\nos.chdir(${pyStr(VM_ROOT)})\n`);
      run(opt.target);
    } else {
      status = runCases(mp, opt, paths, out);
    }
  } catch (e) {
    out.flush();
    if (e && e.name === "PythonError" && e.type === "SystemExit") status = exitCodeOfSystemExit(e, err);
    else {
      err.put(Buffer.from(describe(e) + "\n"));
      status = e && e.name === "PythonError" ? 1 : 2;
    }
  }
  out.flush();
  err.flush();
  return status;
}

function moduleNameOf(target) {
  if (!target.endsWith(".py")) return { name: target, file: null };
  const host = hostPath(target);
  if (!fs.existsSync(host)) usage(`no such file ${target}`);
  const rel = path.relative(path.join(ROOT, "tests"), host);
  if (rel.startsWith("..") || path.isAbsolute(rel)) {
    // outside tests/: import it by its bare name from /ext (used by the runner's own tests)
    return { name: path.basename(host, ".py"), file: host, ext: true };
  }
  return { name: rel.replace(/\.py$/, "").split(path.sep).join("."), file: host, ext: false };
}

function runCases(mp, opt, paths, out) {
  const { name, file, ext } = moduleNameOf(opt.target);
  if (ext) {
    mp.FS.mkdirTree("/ext");
    mp.FS.writeFile("/ext/" + path.basename(file), fs.readFileSync(file));
    paths = ["/ext", ...paths];
  }
  const results = [];
  const report = (r) => {
    results.push(r);
    if (!opt.quiet || !r.ok) {
      out.put(Buffer.from(`${r.ok ? "PASS" : "FAIL"} ${name}.${r.name} ${r.ms.toFixed(1)} ms` +
        (r.alloc === null ? "" : ` alloc ${r.alloc} B`) + "\n"));
      if (!r.ok) out.put(Buffer.from(r.error.replace(/^/gm, "    ") + "\n"));
    }
  };
  let names = [];
  if (file) {
    const src = fs.readFileSync(file, "utf8");
    for (const m of src.matchAll(/^def (case_\w+)\s*\(/gm)) if (!names.includes(m[1])) names.push(m[1]);
  }
  let importError = null;
  const t0 = performance.now();
  try {
    mp.runPython(
      `import sys, os, gc, time\nsys.path[:] = [${paths.map(pyStr).join(", ")}]\nos.chdir(${pyStr(VM_ROOT)})\n` +
        `import ${name} as _cases_mod\n` +
        `_case_names = [n for n in dir(_cases_mod) if n.startswith("case_") and callable(getattr(_cases_mod, n))]\n`,
    );
    const found = mp.PyProxy.toJs(mp.globals.get("_case_names"));
    for (const n of found.sort()) if (!names.includes(n)) names.push(n);
    for (const n of names) if (!found.includes(n)) importError = importError || `${n} is in the file but not in the module`;
  } catch (e) {
    importError = describe(e);
  }
  if (importError) {
    report({ name: "<import>", ok: false, ms: performance.now() - t0, alloc: null, error: importError });
  } else {
    const only = opt.only ? new Set(opt.only) : null;
    for (const n of names) {
      if (only && !only.has(n)) continue;
      const t = performance.now();
      try {
        mp.runPython(
          `gc.collect()\n_case_m0 = gc.mem_alloc()\n_cases_mod.${n}()\n_case_alloc = gc.mem_alloc() - _case_m0\n`,
        );
        const alloc = mp.globals.get("_case_alloc");
        report({ name: n, ok: true, ms: performance.now() - t, alloc, error: null });
      } catch (e) {
        report({ name: n, ok: false, ms: performance.now() - t, alloc: null, error: describe(e) });
      }
    }
    if (only) for (const n of only) if (!names.includes(n)) report({ name: n, ok: false, ms: 0, alloc: null, error: `no case ${n} in ${name}` });
  }
  out.flush();
  const failed = results.filter((r) => !r.ok).length;
  out.put(Buffer.from(`${name}: ${results.length - failed} passed, ${failed} failed under MicroPython ` +
    `(${(performance.now() - t0).toFixed(0)} ms)\n`));
  if (opt.json) fs.writeFileSync(opt.json, JSON.stringify({ module: name, results }, null, 1));
  return failed ? 1 : 0;
}

main().then(
  (status) => process.exit(status),
  (e) => {
    process.stderr.write(`run.mjs: ${describe(e)}\n`);
    process.exit(2);
  },
);
