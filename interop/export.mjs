#!/usr/bin/env node
// export.mjs: materialise a UnixFS DAG from a CAR file with the JavaScript IPFS stack
// (@ipld/car + ipfs-unixfs-exporter), as an independent check of CARs that narfs writes.
//
// Usage: node export.mjs CAR_FILE CID OUTDIR
//
// Every block of the CAR is hash-checked (sha2-256, sha2-512, blake3, identity) before it
// goes into a MemoryBlockstore; then the DAG is walked from CID and written AT OUTDIR
// (like `ipfs get -o OUTDIR`): a directory root becomes the directory OUTDIR (which may
// exist if it is empty), a file or symlink root becomes the file or symlink OUTDIR.
// Files get 0755 when their UnixFS `mode` has any executable bit, else 0644; symlinks are
// real symlinks with the target bytes; directories are 0755. A summary goes to stderr.
// Exit status: 0 ok; 1 on any failure (missing block, hash mismatch, undecodable node,
// unsafe or duplicate name, file size not matching its filesize field, ...); 2 usage.
// Errors print their message; INTEROP_DEBUG=1 prints the stack too.

import { createReadStream } from 'node:fs'
import { chmod, mkdir, open, readdir, symlink } from 'node:fs/promises'
import path from 'node:path'
import { CarBlockIterator } from '@ipld/car/iterator'
import * as dagPb from '@ipld/dag-pb'
import { blake3 } from '@noble/hashes/blake3'
import { MemoryBlockstore } from 'blockstore-core/memory'
import { Node as PBUnixFSNode } from 'ipfs-unixfs'
import { exporter } from 'ipfs-unixfs-exporter'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { identity } from 'multiformats/hashes/identity'
import { sha256, sha512 } from 'multiformats/hashes/sha2'

const USAGE = 'usage: node export.mjs CAR_FILE CID OUTDIR'
const BLAKE3 = 0x1e

class UsageError extends Error {}

/** Digest of `bytes` for multihash `code` with `size` bytes, or throw if unsupported. */
async function digestOf (code, size, bytes) {
  switch (code) {
    case sha256.code: return (await sha256.digest(bytes)).digest
    case sha512.code: return (await sha512.digest(bytes)).digest
    case identity.code: return bytes
    case BLAKE3: return blake3(bytes, { dkLen: size })
    default: throw new Error(`unsupported multihash code 0x${code.toString(16)}`)
  }
}

/** Read every block of the CAR, check it against its CID, put it in a blockstore. */
async function loadCar (carPath) {
  const blockstore = new MemoryBlockstore()
  const iterator = await CarBlockIterator.fromIterable(createReadStream(carPath))
  const roots = await iterator.getRoots()
  let count = 0
  for await (const { cid, bytes } of iterator) {
    const want = cid.multihash.digest
    const got = await digestOf(cid.multihash.code, want.length, bytes)
    if (got.length !== want.length || !got.every((b, i) => b === want[i])) {
      throw new Error(`block ${cid} in the CAR does not match its hash`)
    }
    await blockstore.put(cid, bytes)
    count++
  }
  return { blockstore, roots, count }
}

/** A blockstore view that records which blocks were read and names missing ones. */
function tracking (blockstore) {
  const read = new Set()
  return {
    read,
    get: (cid, options) => {
      if (!blockstore.has(cid)) throw new Error(`block ${cid} is missing from the CAR`)
      read.add(cid.multihash.bytes.toString())
      return blockstore.get(cid, options)
    },
    has: (cid) => blockstore.has(cid)
  }
}

async function blockBytes (blockstore, cid) {
  return Buffer.concat([...blockstore.get(cid)])
}

function checkName (name, dirPath, seen) {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw new Error(`directory ${dirPath || '(root)'} has an unsafe entry name ${JSON.stringify(name)}`)
  }
  if (seen.has(name)) throw new Error(`directory ${dirPath || '(root)'} has duplicate entry ${JSON.stringify(name)}`)
  seen.add(name)
}

/** Write a file's content; returns the number of bytes written. */
async function writeFile (entry, dest, executable, where) {
  const handle = await open(dest, 'wx', 0o644)
  let written = 0n
  try {
    for await (const chunk of entry.content()) {
      await handle.write(chunk)
      written += BigInt(chunk.byteLength)
    }
  } catch (err) {
    throw new Error(`${where}: ${err.message}`)
  } finally {
    await handle.close()
  }
  await chmod(dest, executable ? 0o755 : 0o644)
  return written
}

/** Walk the DAG from `rootCid` and write it at `outDir` (explicit stack, no recursion). */
async function exportTree (blockstore, rootCid, outDir, stats) {
  const stack = [{ cid: rootCid, dest: outDir, rel: '', isRoot: true }]
  while (stack.length > 0) {
    const { cid, dest, rel, isRoot } = stack.pop()
    const where = rel === '' ? `root ${cid}` : `'${rel}' (${cid})`
    let entry
    try {
      entry = await exporter(cid, blockstore)
    } catch (err) {
      throw new Error(`${where}: ${err.message}`)
    }
    if (entry.type === 'directory') {
      if (isRoot) {
        await mkdir(dest, { recursive: true, mode: 0o755 })
        if ((await readdir(dest)).length > 0) throw new Error(`${dest} exists and is not empty`)
      } else {
        await mkdir(dest, { mode: 0o755 })
      }
      stats.dirs++
      const seen = new Set()
      const children = []
      for await (const child of entry.entries()) {
        checkName(child.name, rel, seen)
        children.push(child)
      }
      for (let i = children.length - 1; i >= 0; i--) {
        const child = children[i]
        stack.push({ cid: child.cid, dest: path.join(dest, child.name), rel: rel === '' ? child.name : `${rel}/${child.name}`, isRoot: false })
      }
    } else if (entry.type === 'raw') {
      stats.bytes += await writeFile(entry, dest, false, where)
      stats.files++
    } else if (entry.type === 'file' && entry.unixfs.type === 'symlink') {
      if (entry.node.Links.length > 0) throw new Error(`${where}: symlink node has links`)
      const target = entry.unixfs.data
      if (target == null || target.length === 0) throw new Error(`${where}: symlink has an empty target`)
      if (target.includes(0)) throw new Error(`${where}: symlink target contains NUL`)
      await symlink(Buffer.from(target), dest)
      stats.symlinks++
    } else if (entry.type === 'file' && (entry.unixfs.type === 'file' || entry.unixfs.type === 'raw')) {
      // The exporter checks blocksizes against links and the bytes read against their
      // sum; also check the node's own filesize field, which it ignores.
      const message = PBUnixFSNode.decode(await blockBytes(blockstore, cid)).data
      const executable = message?.mode != null && (message.mode & 0o111) !== 0
      const written = await writeFile(entry, dest, executable, where)
      if (message?.fileSize != null && BigInt(message.fileSize) !== written) {
        throw new Error(`${where}: filesize field says ${message.fileSize} but the DAG holds ${written} bytes`)
      }
      stats.bytes += written
      stats.files++
      if (executable) stats.executables++
    } else {
      throw new Error(`${where}: unsupported node (exporter type '${entry.type}', UnixFS type '${entry.unixfs?.type}')`)
    }
  }
}

function parseArgs (argv) {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${USAGE}\n`)
    process.exit(0)
  }
  if (argv.length !== 3) throw new UsageError(`expected 3 arguments, got ${argv.length}`)
  const [car, cidText, outDir] = argv
  let cid
  try {
    cid = CID.parse(cidText)
  } catch (err) {
    throw new UsageError(`invalid CID '${cidText}': ${err.message}`)
  }
  if (cid.code !== dagPb.code && cid.code !== raw.code) {
    throw new UsageError(`CID ${cid} has codec 0x${cid.code.toString(16)}; UnixFS needs dag-pb or raw`)
  }
  return { car, cid, outDir }
}

async function main () {
  const { car, cid, outDir } = parseArgs(process.argv.slice(2))
  const { blockstore, roots, count } = await loadCar(car).catch((err) => {
    throw new Error(`reading CAR ${car}: ${err.message}`)
  })
  const store = tracking(blockstore)
  const stats = { dirs: 0, files: 0, executables: 0, symlinks: 0, bytes: 0n }
  await exportTree(store, cid, outDir, stats)
  const inRoots = roots.some((r) => r.equals(cid)) ? 'a root of the CAR' : 'NOT a root of the CAR'
  process.stderr.write(`export.mjs: ${cid} (${inRoots}) -> ${outDir}: ${stats.dirs} directories, ` +
    `${stats.files} files (${stats.bytes} bytes, ${stats.executables} executable), ${stats.symlinks} symlinks; ` +
    `${store.read.size} of ${count} CAR blocks read\n`)
}

main().catch((err) => {
  if (err instanceof UsageError) {
    process.stderr.write(`export.mjs: ${err.message}\n${USAGE}\n`)
    process.exit(2)
  }
  const detail = process.env.INTEROP_DEBUG ? (err.stack ?? err) : (err.message ?? err)
  process.stderr.write(`export.mjs: error: ${detail}\n`)
  process.exit(1)
})
