#!/usr/bin/env node
// fetch.mjs: fetch a UnixFS DAG by CID from an IPFS trustless gateway (such as
// `narfs serve`) with the JavaScript IPFS stack, verifying every block, and write it
// out, for the narfs end-to-end tests.
//
// Usage: node fetch.mjs GATEWAY_URL CID OUT [--car]
//
// Default: block by block, with Helia's trustless-gateway client
// (@helia/trustless-gateway-client, the block broker Helia and @helia/verified-fetch use
// to talk to gateways: `GET /ipfs/{cid}?format=raw`, `Accept: application/vnd.ipld.raw`),
// each block hashed and compared with its CID before use, the DAG walked by
// ipfs-unixfs-exporter. With --car: one `GET /ipfs/{cid}?dag-scope=all` with
// `Accept: application/vnd.ipld.car`, read with @ipld/car; the CAR's root must be CID
// and every block must match its CID.
//
// The DAG is written AT OUT (like `ipfs get -o OUT`): a directory, a file (0755 when its
// UnixFS mode has an executable bit, else 0644) or a symlink. One JSON line of figures
// goes to stdout. Exit status: 0 ok; 1 on any failure (HTTP error, bad block, missing
// block, unsafe name); 2 usage.

import { mkdir, open, chmod, symlink } from 'node:fs/promises'
import path from 'node:path'
import { trustlessGatewayBlockBroker } from '@helia/trustless-gateway-client'
import { CarBlockIterator } from '@ipld/car/iterator'
import { multiaddr } from '@multiformats/multiaddr'
import { MemoryBlockstore } from 'blockstore-core/memory'
import { Node as PBUnixFSNode } from 'ipfs-unixfs'
import { exporter } from 'ipfs-unixfs-exporter'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { blake3 } from '@noble/hashes/blake3'

const USAGE = 'usage: node fetch.mjs GATEWAY_URL CID OUT [--car]'
const BLAKE3 = 0x1e
const debug = process.env.INTEROP_DEBUG === '1'

/** Throws unless `bytes` hash to `cid` (sha2-256 or blake3). */
async function verify (cid, bytes) {
  const want = cid.multihash.digest
  let got
  if (cid.multihash.code === sha256.code) got = (await sha256.digest(bytes)).digest
  else if (cid.multihash.code === BLAKE3) got = blake3(bytes, { dkLen: want.length })
  else throw new Error(`block ${cid}: unsupported multihash 0x${cid.multihash.code.toString(16)}`)
  if (got.length !== want.length || !got.every((b, i) => b === want[i])) {
    throw new Error(`block ${cid}: the gateway sent bytes that do not match the CID`)
  }
}

/** A libp2p-style logger that is silent unless INTEROP_DEBUG=1. */
const logger = {
  forComponent (name) {
    const log = (...args) => { if (debug) console.error(name, ...args) }
    log.error = (...args) => { if (debug) console.error(name, 'error', ...args) }
    log.trace = () => {}
    log.enabled = debug
    return log
  }
}

/** A blockstore whose blocks come, verified, from the gateway through Helia's broker. */
function gatewayBlockstore (url, stats) {
  const u = new URL(url)
  const addr = multiaddr(`/ip4/${u.hostname}/tcp/${u.port}/${u.protocol === 'https:' ? 'https' : 'http'}`)
  const routing = {
    async * findProviders () { yield { id: null, multiaddrs: [addr] } }
  }
  const broker = trustlessGatewayBlockBroker({ allowInsecure: true, allowLocal: true })({ logger, routing })
  const get = async (cid, options) => {
    stats.requests++
    const bytes = await broker.retrieve(cid, { ...options, validateFn: (b) => verify(cid, b) })
    await verify(cid, bytes) // also checked by the broker's validateFn: never trust, verify
    stats.blocks++
    return bytes
  }
  return { get: async function * (cid, options) { yield await get(cid, options) } }
}

/** The whole DAG as one CAR, every block verified, in a MemoryBlockstore. */
async function carBlockstore (url, cid, stats) {
  const res = await fetch(new URL(`/ipfs/${cid}?dag-scope=all`, url), {
    headers: { Accept: 'application/vnd.ipld.car' }
  })
  stats.requests++
  if (!res.ok) throw new Error(`GET /ipfs/${cid}: ${res.status} ${res.statusText}`)
  const type = res.headers.get('content-type') ?? ''
  if (!type.startsWith('application/vnd.ipld.car')) throw new Error(`content-type ${type}`)
  const blockstore = new MemoryBlockstore()
  const iterator = await CarBlockIterator.fromIterable(res.body)
  const roots = await iterator.getRoots()
  if (roots.length !== 1 || !roots[0].equals(cid)) throw new Error(`CAR roots ${roots} are not [${cid}]`)
  for await (const block of iterator) {
    await verify(block.cid, block.bytes)
    await blockstore.put(block.cid, block.bytes)
    stats.blocks++
  }
  return blockstore
}

async function writeFile (entry, dest, mode) {
  const handle = await open(dest, 'wx', 0o644)
  let n = 0
  try {
    for await (const chunk of entry.content()) {
      await handle.write(chunk)
      n += chunk.byteLength
    }
  } finally {
    await handle.close()
  }
  await chmod(dest, mode)
  return n
}

/** Walks the DAG from `root` and writes it at `out` (explicit stack, no recursion). */
async function exportTree (blockstore, root, out, stats) {
  const stack = [{ cid: root, dest: out }]
  while (stack.length > 0) {
    const { cid, dest } = stack.pop()
    const entry = await exporter(cid, blockstore)
    if (entry.type === 'directory') {
      await mkdir(dest, { mode: 0o755 })
      stats.dirs++
      const seen = new Set()
      for await (const child of entry.entries()) {
        const name = child.name
        if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0') || seen.has(name)) {
          throw new Error(`unsafe or duplicate entry name ${JSON.stringify(name)} in ${cid}`)
        }
        seen.add(name)
        stack.push({ cid: child.cid, dest: path.join(dest, name) })
      }
    } else if (entry.type === 'raw') {
      stats.bytes += await writeFile(entry, dest, 0o644)
      stats.files++
    } else if (entry.type === 'file' && entry.unixfs.type === 'symlink') {
      await symlink(Buffer.from(entry.unixfs.data), dest)
      stats.symlinks++
    } else if (entry.type === 'file') {
      const mode = entry.unixfs.mode
      const exec = mode != null && (mode & 0o111) !== 0
      const n = await writeFile(entry, dest, exec ? 0o755 : 0o644)
      const fileSize = PBUnixFSNode.decode(entry.node.Data ?? new Uint8Array()).fileSize
      if (fileSize != null && BigInt(fileSize) !== BigInt(n)) throw new Error(`${cid}: filesize ${fileSize}, content ${n}`)
      stats.bytes += n
      stats.files++
    } else {
      throw new Error(`${cid}: unsupported node type ${entry.type}`)
    }
  }
}

async function main () {
  const args = process.argv.slice(2)
  const car = args.includes('--car')
  const pos = args.filter((a) => a !== '--car')
  if (pos.length !== 3) {
    console.error(USAGE)
    process.exit(2)
  }
  const [url, cidText, out] = pos
  let cid
  try {
    cid = CID.parse(cidText)
  } catch (err) {
    console.error(`invalid CID ${cidText}: ${err.message}`)
    process.exit(2)
  }
  const stats = { cid: cid.toString(), mode: car ? 'car' : 'raw', requests: 0, blocks: 0, dirs: 0, files: 0, symlinks: 0, bytes: 0 }
  const blockstore = car ? await carBlockstore(url, cid, stats) : gatewayBlockstore(url, stats)
  await exportTree(blockstore, cid, out, stats)
  process.stdout.write(JSON.stringify(stats) + '\n')
}

main().catch((err) => {
  console.error(`fetch.mjs: ${debug ? err.stack : err.message}${err.errors ? ': ' + err.errors.map((e) => e.message).join('; ') : ''}`)
  process.exit(1)
})
