#!/usr/bin/env node
// cids.mjs: reference UnixFS CIDs for a file system tree, computed by the JavaScript
// IPFS stack (ipfs-unixfs-importer into blockstore-core's MemoryBlockstore).
//
// Usage: node cids.mjs DIR [--profile kubo-v1|unixfs-v1-2025] [--mode per-dir|tree]
//                          [--car OUT.car]
//
// Prints one JSON object per line on stdout, root first, then every entry sorted by its
// path bytes: {"path": "a/b", "cid": "bafy...", "type": "file|directory|symlink"}
// (path "" is DIR itself). DIR may also be a single file or symlink: then only the root
// line is printed. No mtime/mode metadata is imported (executable files get the CIDs of
// plain files). --car also writes every imported block to a CARv1 file whose root is
// the root CID. Exit status: 0 ok, 1 failure, 2 usage error (INTEROP_DEBUG=1 adds stacks).
//
// Profiles (see README.md for the source references):
// - kubo-v1: `ipfs add -r --cid-version=1 --raw-leaves`: CIDv1, raw leaves, fixed
//   262144-byte chunks, balanced layout with 174 links per node, a directory becomes a
//   HAMT (murmur3, fanout 256) when sum(len(name) + len(cid)) over its links exceeds
//   262144 (shardSplitStrategy 'links-bytes').
// - unixfs-v1-2025: the importer's own IPIP-499 `profile: 'unixfs-v1-2025'` option
//   (present in ipfs-unixfs-importer 17.1.1, dist/src/index.js:120-127): CIDv1, raw
//   leaves, 1 MiB chunks, 1024 links per node, a directory becomes a HAMT when its
//   serialized flat dag-pb block would exceed 262144 bytes ('block-bytes').
//
// Modes:
// - per-dir (default): every directory is imported on its own, bottom-up, with its
//   already-imported subdirectories passed in as finished entries (through the
//   importer's `dirBuilder` hook). The HAMT decision then counts every link of the
//   directory, subdirectories included, as Kubo's MFS-based `ipfs add` does.
// - tree: one importer call over the whole tree (how Helia/globSource import). In
//   ipfs-unixfs-importer 17.1.1 a subdirectory that is still being built has no CID, so
//   it counts 0 bytes towards its parent's HAMT threshold (dir-flat.js estimateLinkSize /
//   calculateLinkSize): a directory with very many subdirectories stays flat where Kubo
//   would shard it. Kept for comparison; both modes agree on every other tree.

import { createReadStream, createWriteStream } from 'node:fs'
import { lstat, readdir, readlink } from 'node:fs/promises'
import path from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { CarWriter } from '@ipld/car/writer'
import { MemoryBlockstore } from 'blockstore-core/memory'
import { recursive } from 'ipfs-unixfs-exporter'
import { importer } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'

const USAGE = 'usage: node cids.mjs DIR [--profile kubo-v1|unixfs-v1-2025] [--mode per-dir|tree] [--car OUT.car]'

class UsageError extends Error {}

const utf8 = new TextDecoder('utf-8', { fatal: true })

/** Fresh importer options for a profile (the importer mutates the object it is given). */
function profileOptions (profile) {
  switch (profile) {
    case 'kubo-v1':
      return {
        cidVersion: 1,
        rawLeaves: true,
        reduceSingleLeafToSelf: true,
        chunker: fixedSize({ chunkSize: 262144 }),
        layout: balanced({ maxChildrenPerNode: 174 }),
        shardSplitStrategy: 'links-bytes',
        shardSplitThresholdBytes: 262144,
        shardFanoutBits: 8
      }
    case 'unixfs-v1-2025':
      // The importer sets cidVersion 1, rawLeaves true, 1 MiB chunks, 1024 links and
      // shardSplitStrategy 'block-bytes' itself; the threshold stays its default 262144.
      return { profile: 'unixfs-v1-2025' }
    default:
      throw new UsageError(`unknown profile '${profile}' (expected kubo-v1 or unixfs-v1-2025)`)
  }
}

function parseArgs (argv) {
  const args = { dir: undefined, profile: 'kubo-v1', mode: 'per-dir', car: undefined }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const takeValue = (flag) => {
      if (a.startsWith(`${flag}=`)) return a.slice(flag.length + 1)
      if (i + 1 >= argv.length) throw new UsageError(`${flag} needs a value`)
      return argv[++i]
    }
    if (a === '--help' || a === '-h') {
      process.stdout.write(`${USAGE}\n`)
      process.exit(0)
    } else if (a === '--profile' || a.startsWith('--profile=')) {
      args.profile = takeValue('--profile')
    } else if (a === '--mode' || a.startsWith('--mode=')) {
      args.mode = takeValue('--mode')
    } else if (a === '--car' || a.startsWith('--car=')) {
      args.car = takeValue('--car')
    } else if (a.startsWith('--')) {
      throw new UsageError(`unknown option '${a}'`)
    } else if (args.dir === undefined) {
      args.dir = a
    } else {
      throw new UsageError(`unexpected argument '${a}'`)
    }
  }
  if (args.dir === undefined) throw new UsageError('missing DIR')
  profileOptions(args.profile)
  if (args.mode !== 'per-dir' && args.mode !== 'tree') {
    throw new UsageError(`unknown mode '${args.mode}' (expected per-dir or tree)`)
  }
  return args
}

function decodeName (bytes, where) {
  try {
    return utf8.decode(bytes)
  } catch {
    throw new Error(`${where}: not valid UTF-8 (${Buffer.from(bytes).toString('hex')}); UnixFS link names and the importer's symlink targets must be UTF-8`)
  }
}

/**
 * Scan the file system under `abs` (lstat, never following symlinks) into
 * { kind: 'file' | 'symlink' | 'dir', abs, rel, target?, children? }, children sorted by
 * name bytes. Iterative, so a deep tree cannot overflow the stack.
 */
async function scan (root) {
  const top = { abs: root, rel: '' }
  const stack = [top]
  while (stack.length > 0) {
    const node = stack.pop()
    const st = await lstat(node.abs)
    if (st.isFile()) {
      node.kind = 'file'
    } else if (st.isSymbolicLink()) {
      node.kind = 'symlink'
      const target = await readlink(node.abs, { encoding: 'buffer' })
      node.target = decodeName(target, `symlink target of ${node.abs}`)
    } else if (st.isDirectory()) {
      node.kind = 'dir'
      const names = await readdir(node.abs, { encoding: 'buffer' })
      names.sort(Buffer.compare)
      node.children = names.map((nameBytes) => {
        const name = decodeName(nameBytes, `name in ${node.abs}`)
        return {
          name,
          abs: path.join(node.abs, name),
          rel: node.rel === '' ? name : `${node.rel}/${name}`
        }
      })
      stack.push(...node.children)
    } else {
      throw new Error(`${node.abs}: unsupported file type (not a regular file, directory or symlink)`)
    }
  }
  return top
}

/** Every node of the scanned tree in pre-order (root first, children by name bytes). */
function * preorder (top) {
  const stack = [top]
  while (stack.length > 0) {
    const node = stack.pop()
    yield node
    if (node.kind === 'dir') {
      for (let i = node.children.length - 1; i >= 0; i--) stack.push(node.children[i])
    }
  }
}

/** An importer candidate for a file or symlink node under the given import path. */
function leafCandidate (node, importPath) {
  if (node.kind === 'file') {
    // Opened only when the importer reads it, so a directory of thousands of files does
    // not hold thousands of descriptors open at once.
    const content = (async function * () { yield * createReadStream(node.abs) })()
    return { path: importPath, content }
  }
  return { path: importPath, link: node.target }
}

/** Import a single file or symlink; returns its CID. */
async function importLeaf (node, blockstore, profile) {
  const results = []
  for await (const entry of importer([leafCandidate(node, 'root')], blockstore, profileOptions(profile))) {
    results.push(entry)
  }
  if (results.length !== 1) throw new Error(`importer returned ${results.length} entries for one ${node.kind}`)
  return results[0].cid
}

/**
 * per-dir mode: import each directory bottom-up. Returns Map(rel path -> CID) for every
 * node, filled from the importer's own results.
 */
async function importPerDir (top, blockstore, profile) {
  const cids = new Map()
  const built = new Map() // rel path of a directory -> importer result of its root
  const dirs = [...preorder(top)].filter((n) => n.kind === 'dir').reverse() // children first
  for (const dir of dirs) {
    const candidates = dir.children.map((child) =>
      child.kind === 'dir' ? { path: child.name } : leafCandidate(child, child.name))
    const options = {
      ...profileOptions(profile),
      wrapWithDirectory: true,
      // Subdirectories were imported already: hand the tree builder the finished result
      // so the parent links (and counts for sharding) the real subdirectory CID.
      dirBuilder: async (entry) => {
        const child = built.get(dir.rel === '' ? entry.path : `${dir.rel}/${entry.path}`)
        if (child === undefined) throw new Error(`internal: subdirectory '${entry.path}' of '${dir.rel}' was not imported`)
        return { cid: child.cid, path: entry.path, unixfs: child.unixfs, size: child.size, originalPath: entry.originalPath }
      }
    }
    let root
    for await (const entry of importer(candidates, blockstore, options)) {
      const rel = entry.path === '' ? dir.rel : (dir.rel === '' ? entry.path : `${dir.rel}/${entry.path}`)
      cids.set(rel, entry.cid)
      if (entry.path === '') root = entry
    }
    if (root === undefined) throw new Error(`importer yielded no root for directory '${dir.rel}'`)
    built.set(dir.rel, root)
  }
  return cids
}

/**
 * tree mode: one importer call over all files, symlinks and empty directories. Returns
 * Map(rel path -> CID) of what the importer yielded (empty directories are not yielded).
 */
async function importTree (top, blockstore, profile) {
  const candidates = []
  for (const node of preorder(top)) {
    if (node === top) continue
    if (node.name.endsWith('\\')) {
      throw new Error(`${node.abs}: a name ending in '\\' escapes the following '/' in the importer's path splitting; use --mode per-dir`)
    }
    if (node.kind === 'dir') {
      if (node.children.length === 0) candidates.push({ path: node.rel })
    } else {
      candidates.push(leafCandidate(node, node.rel))
    }
  }
  const cids = new Map()
  for await (const entry of importer(candidates, blockstore, { ...profileOptions(profile), wrapWithDirectory: true })) {
    cids.set(entry.path, entry.cid)
  }
  if (!cids.has('')) throw new Error('importer yielded no root directory')
  return cids
}

/**
 * Walk the imported DAG from the root with ipfs-unixfs-exporter and check it against the
 * scan: every scanned path must be in the DAG (and nothing else), and every CID the
 * importer yielded must be the one the DAG links. Fills in the CIDs the importer did
 * not yield.
 */
async function checkAgainstDag (top, rootCid, blockstore, cids) {
  const prefix = rootCid.toString()
  const inDag = new Map()
  for await (const entry of recursive(rootCid, blockstore)) {
    if (entry.path === prefix) {
      inDag.set('', entry.cid)
    } else if (entry.path.startsWith(`${prefix}/`)) {
      inDag.set(entry.path.slice(prefix.length + 1), entry.cid)
    } else {
      throw new Error(`exporter returned unexpected path '${entry.path}'`)
    }
  }
  const scanned = new Set()
  for (const node of preorder(top)) {
    scanned.add(node.rel)
    const linked = inDag.get(node.rel)
    if (linked === undefined) throw new Error(`'${node.rel}' is missing from the imported DAG`)
    const yielded = cids.get(node.rel)
    if (yielded !== undefined && !yielded.equals(linked)) {
      throw new Error(`'${node.rel}': importer yielded ${yielded} but the DAG links ${linked}`)
    }
    cids.set(node.rel, linked)
  }
  for (const rel of inDag.keys()) {
    if (!scanned.has(rel)) throw new Error(`imported DAG has unexpected entry '${rel}'`)
  }
}

/**
 * A MemoryBlockstore that remembers the CID each block was put under: the store itself
 * keys blocks by multihash only, and its getAll() hands them back as raw-codec CIDs.
 */
class RecordingBlockstore extends MemoryBlockstore {
  constructor () {
    super()
    this.cids = new Map()
  }

  put (cid, bytes, options) {
    this.cids.set(cid.toString(), cid)
    return super.put(cid, bytes, options)
  }
}

/** Write every block of the blockstore, under its real CID, to a CARv1 file. */
async function writeCar (file, root, blockstore) {
  const { writer, out } = CarWriter.create([root])
  const done = pipeline(Readable.from(out), createWriteStream(file))
  for (const cid of blockstore.cids.values()) {
    const bytes = Buffer.concat([...blockstore.get(cid)])
    await writer.put({ cid, bytes })
  }
  await writer.close()
  await done
}

const TYPES = { file: 'file', dir: 'directory', symlink: 'symlink' }

async function main () {
  const args = parseArgs(process.argv.slice(2))
  const top = await scan(path.resolve(args.dir))
  const blockstore = new RecordingBlockstore()
  const lines = []
  let rootCid
  if (top.kind !== 'dir') {
    rootCid = await importLeaf(top, blockstore, args.profile)
    lines.push({ path: '', cid: rootCid.toString(), type: TYPES[top.kind] })
  } else {
    const cids = args.mode === 'per-dir'
      ? await importPerDir(top, blockstore, args.profile)
      : await importTree(top, blockstore, args.profile)
    rootCid = cids.get('')
    if (rootCid === undefined) throw new Error('no root CID')
    await checkAgainstDag(top, rootCid, blockstore, cids)
    const nodes = [...preorder(top)]
    nodes.sort((a, b) => Buffer.compare(Buffer.from(a.rel), Buffer.from(b.rel)))
    for (const node of nodes) {
      lines.push({ path: node.rel, cid: cids.get(node.rel).toString(), type: TYPES[node.kind] })
    }
  }
  if (args.car !== undefined) await writeCar(args.car, rootCid, blockstore)
  process.stdout.write(lines.map((l) => JSON.stringify(l)).join('\n') + '\n')
}

main().catch((err) => {
  if (err instanceof UsageError) {
    process.stderr.write(`cids.mjs: ${err.message}\n${USAGE}\n`)
    process.exit(2)
  }
  const detail = process.env.INTEROP_DEBUG ? (err.stack ?? err) : (err.message ?? err)
  process.stderr.write(`cids.mjs: error: ${detail}\n`)
  process.exit(1)
})
