// Node side of the conformance runner (run.py): drives the npm package
// http-cache-tests without its own entry points, which bind every interface
// (server/server.mjs calls listen(port) with no host, and writes a pid file
// into the current directory) and never exit while keep-alive sockets idle
// (cli.mjs).
//
//   node suite.mjs server PKGDIR PORT              test origin on 127.0.0.1:PORT
//   node suite.mjs list   PKGDIR                   test metadata as JSON on stdout
//   node suite.mjs client PKGDIR BASE OUT [--dump] [ID[,ID...]]
//                                                  run the suite against BASE
//                                                  (no trailing slash), results
//                                                  JSON to OUT; with IDs, only
//                                                  those tests; --dump prints
//                                                  their requests and responses
//
// PKGDIR is the package directory, .../node_modules/http-cache-tests.

import http from 'http'
import path from 'path'
import process from 'process'
import fs from 'fs'
import { createRequire } from 'module'
import { pathToFileURL } from 'url'

function usage () {
  console.error('usage: node suite.mjs server PKGDIR PORT | list PKGDIR | client PKGDIR BASE OUT [--dump] [ID[,ID...]]')
  process.exit(2)
}

const [mode, pkgDir, ...rest] = process.argv.slice(2)
if (!mode || !pkgDir) usage()

function pkgImport (rel) {
  return import(pathToFileURL(path.join(pkgDir, rel)).href)
}

// The suites in the order the package's cli.mjs runs them: tests/index.mjs,
// then Surrogate-Control appended at the end.
async function loadSuites () {
  const suites = (await pkgImport('tests/index.mjs')).default.slice()
  suites.push((await pkgImport('tests/surrogate-control.mjs')).default)
  return suites
}

async function server (port) {
  // The same dispatch as server/server.mjs, bound to loopback only.
  const handleConfig = (await pkgImport('server/handle-config.mjs')).default
  const handleFile = (await pkgImport('server/handle-file.mjs')).default
  const handleState = (await pkgImport('server/handle-state.mjs')).default
  const handleTest = (await pkgImport('server/handle-test.mjs')).default
  process.chdir(pkgDir) // handle-file serves files relative to the cwd
  const baseUrl = `http://127.0.0.1:${port}/`
  const srv = http.createServer((request, response) => {
    const url = new URL(request.url, baseUrl)
    const pathSegs = url.pathname.split('/')
    pathSegs.shift()
    const dispatch = pathSegs.shift()
    if (dispatch === 'config') {
      handleConfig(pathSegs, request, response)
    } else if (dispatch === 'test') {
      handleTest(pathSegs, request, response)
    } else if (dispatch === 'state') {
      handleState(pathSegs, request, response)
    } else {
      handleFile(url, request, response)
    }
  })
  srv.on('error', err => {
    console.error(`test server: ${err.message}`)
    process.exit(1)
  })
  srv.listen(Number(port), '127.0.0.1', () => {
    console.log(`Listening on http://127.0.0.1:${srv.address().port}/`)
  })
  const stop = () => process.exit(0)
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}

async function list () {
  const suites = await loadSuites()
  const out = []
  suites.forEach(suite => {
    suite.tests.forEach(test => {
      out.push({
        id: test.id,
        name: test.name,
        suite: suite.id,
        suite_name: suite.name,
        kind: test.kind || 'required',
        depends_on: test.depends_on || [],
        browser_only: test.browser_only === true,
        browser_skip: test.browser_skip === true
      })
    })
  })
  process.stdout.write(JSON.stringify(out, null, 1) + '\n')
}

async function client (base, outFile, args) {
  const dump = args[0] === '--dump'
  if (dump) args = args.slice(1)
  const ids = args.length ? new Set(args[0].split(',')) : null
  if (base.endsWith('/')) base = base.replace(/\/+$/, '')
  const runner = await pkgImport('client/runner.mjs')
  const require = createRequire(path.join(pkgDir, 'package.json'))
  const fetch = require('node-fetch')
  const suites = await loadSuites()
  let toRun = suites
  if (ids) {
    toRun = []
    suites.forEach(suite => {
      const tests = suite.tests.filter(test => ids.has(test.id))
      tests.forEach(test => { if (dump) test.dump = true })
      if (tests.length) toRun.push({ name: suite.name, id: suite.id, description: suite.description, tests })
    })
    const found = toRun.reduce((n, s) => n + s.tests.length, 0)
    if (found !== ids.size) {
      console.error(`unknown test id in ${[...ids].join(',')}`)
      process.exit(2)
    }
    if (dump) console.log(`Running ${[...ids].join(', ')}`)
  }
  await runner.runTests(toRun, fetch, false, base)
  const results = runner.getResults()
  fs.writeFileSync(outFile, JSON.stringify(results, null, 2) + '\n')
  if (dump) {
    for (const id of ids) console.log(`==== Result for ${id}: ${results[id] === true ? 'pass' : JSON.stringify(results[id])}`)
  }
  // node-fetch keeps idle keep-alive sockets open; do not wait for them.
  process.exit(0)
}

try {
  if (mode === 'server' && rest.length === 1) await server(rest[0])
  else if (mode === 'list' && rest.length === 0) await list()
  else if (mode === 'client' && rest.length >= 2 && rest.length <= 4) await client(rest[0], rest[1], rest.slice(2))
  else usage()
} catch (err) {
  console.error(`suite.mjs ${mode}: ${err && err.stack ? err.stack : err}`)
  process.exit(1)
}
