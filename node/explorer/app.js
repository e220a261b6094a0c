/* Notary chain explorer: one page, hash navigation, kept live by polling this node every 2 s.
 *
 * It uses only this node's public API (/v1/...) and checks every proof it shows in the
 * browser: a strict msgpack decoder, Ed25519 through Web Crypto, the sparse Merkle state
 * proofs and RFC 9162 log proofs, exactly as ledger/proofs.py verify_bundle does. Files
 * being verified are hashed here with crypto.subtle.digest and never leave the machine.
 * Web Crypto needs a secure context: https, or http from localhost / 127.0.0.1.
 *
 * Routes:
 *   #/                         overview: members and latest blocks
 *   #/verify                   verify a file (drop zone)
 *   #/verify?certificate=ID    a certificate and its proof (the link in certificates' QR codes)
 *   #/block/H  #/tx/ID  #/evidence/ID  #/application/ID  #/certificate/ID  #/search/QUERY
 *
 * Stable element ids (the browser test relies on them):
 *   chain-id          the chain id, in the header
 *   node-status       this node's status line, in the header
 *   search-form, search-input   the search box
 *   view              the current page
 *   members           consortium table; one tr.member per institution (data-name), whose
 *                     td.reachability says "this node", "reachable" or "unreachable"
 *   blocks            latest blocks table; one tr.block per block (data-height)
 *   block             a block's page (data-height); its transactions are tr.tx (data-id)
 *   transaction       a transaction's page (data-id); tx-state holds its state
 *   evidence          an evidence record's page
 *   application       an application's page, with tables findings and history
 *   certificate       a certificate's page; certificate-status holds "active" or "revoked",
 *                     certificate-signers the institutions whose checkpoint signatures prove it
 *   search-results    what a search found (when it found several things or nothing)
 *   drop-zone, file-input   "verify a file"
 *   trust-anchor      which genesis proofs are checked against; genesis-input lets the user
 *                     choose a genesis.json they hold instead of this node's
 *   file-hash         the chosen file's SHA-256 (hex), computed in the browser
 *   verify-result     "registered" or "not registered" (or "error: ...")
 *   evidence-record   the record: kind, size, title, trusted time, height
 *   trusted-time      the record's trusted time, ISO 8601 UTC (e.g. 2026-11-30T10:00:00.000Z)
 *   proof-result      "proof verified", or "proof failed: <reason>"; for an unregistered file,
 *                     "absence proven at height H" when the node proves the id is absent
 *   proof-checks      the list of checks made
 */
"use strict";

(() => {
  const POLL_MS = 2000;
  const FETCH_TIMEOUT_MS = 15000;
  const PROOF_RETRIES = 15;
  const BLOCKS_SHOWN = 10;
  const HASH_FILE_BYTES_MAX = 2 * 1024 * 1024 * 1024;
  const PROOF_FORMAT = "notarychain-proof/1";

  // ------------------------------------------------------------------ bytes

  const encoder = new TextEncoder();
  const utf8Strict = new TextDecoder("utf-8", { fatal: true });

  function hex(bytes) {
    let out = "";
    for (const b of bytes) out += b.toString(16).padStart(2, "0");
    return out;
  }

  function fromHex(text) {
    if (!/^([0-9a-f]{2})*$/.test(text)) throw new Error("not lowercase hex");
    const out = new Uint8Array(text.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = parseInt(text.substr(2 * i, 2), 16);
    return out;
  }

  function concat(...parts) {
    const size = parts.reduce((n, p) => n + p.length, 0);
    const out = new Uint8Array(size);
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }

  function equal(a, b) {
    if (a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
    return true;
  }

  function fromBase64(text) {
    if (typeof text !== "string") throw new ProofFailure("the bundle field is not base64");
    let binary;
    try {
      binary = atob(text);
    } catch {
      throw new ProofFailure("the bundle field is not base64");
    }
    const out = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
    return out;
  }

  function sameInt(a, b) {
    try {
      return BigInt(a) === BigInt(b);
    } catch {
      return false; // not integers
    }
  }

  /* Does a value the node's JSON answer shows equal the value a proof proves? */
  const same = (shown, proven) => (typeof proven === "number" || typeof proven === "bigint"
    ? typeof shown === "number" && sameInt(shown, proven) : shown === proven);

  // ------------------------------------------------------------------ errors

  /** A proof that does not hold; the message is the reason shown after "proof failed: ". */
  class ProofFailure extends Error {}

  /** An API answer that is an error {"error": {"code", "message"}} (or no answer at all). */
  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  // ------------------------------------------------------------------ strict msgpack

  /* Decodes the canonical msgpack of ledger/encoding.py and nothing else: no maps, no
   * extension types, no floats, no trailing bytes, and every header the shortest one for
   * its value (as msgpack-python writes it), so the bytes checked are the bytes signed.
   * Arrays carry `.raw`, the exact bytes they were decoded from (what is hashed or signed).
   * Integers are Numbers, or BigInts beyond 2**53. */
  function unpack(bytes) {
    const data = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let pos = 0;

    function need(n) {
      if (n > bytes.length - pos) throw new ProofFailure("malformed msgpack: input is truncated");
    }
    function canonical(ok, start) {
      if (!ok) throw new ProofFailure(`non-canonical msgpack at byte ${start}`);
    }
    function safe(big) {
      return big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER)
        ? Number(big)
        : big;
    }
    function uint(size) {
      need(size);
      const at = pos;
      pos += size;
      if (size === 1) return data.getUint8(at);
      if (size === 2) return data.getUint16(at);
      if (size === 4) return data.getUint32(at);
      return data.getBigUint64(at);
    }
    function int(size) {
      need(size);
      const at = pos;
      pos += size;
      if (size === 1) return data.getInt8(at);
      if (size === 2) return data.getInt16(at);
      if (size === 4) return data.getInt32(at);
      return data.getBigInt64(at);
    }
    function str(n) {
      need(n);
      const at = pos;
      pos += n;
      try {
        return utf8Strict.decode(bytes.subarray(at, at + n));
      } catch {
        throw new ProofFailure(`malformed msgpack: invalid UTF-8 at byte ${at}`);
      }
    }
    function bin(n) {
      need(n);
      pos += n;
      return bytes.slice(pos - n, pos);
    }
    function array(n, depth, start) {
      if (n > bytes.length - pos) throw new ProofFailure("malformed msgpack: input is truncated");
      const items = [];
      for (let i = 0; i < n; i++) items.push(value(depth + 1));
      items.raw = bytes.subarray(start, pos);
      return items;
    }
    function value(depth) {
      if (depth > 64) throw new ProofFailure("malformed msgpack: nested too deeply");
      const start = pos;
      need(1);
      const b = bytes[pos++];
      if (b <= 0x7f) return b;
      if (b >= 0xe0) return b - 0x100;
      if (b >= 0x90 && b <= 0x9f) return array(b & 0x0f, depth, start);
      if (b >= 0xa0 && b <= 0xbf) return str(b & 0x1f);
      if ((b >= 0x80 && b <= 0x8f) || b === 0xde || b === 0xdf) {
        throw new ProofFailure("malformed msgpack: maps are not allowed");
      }
      if ((b >= 0xc7 && b <= 0xc9) || (b >= 0xd4 && b <= 0xd8)) {
        throw new ProofFailure("malformed msgpack: extension types are not allowed");
      }
      let n;
      let v;
      switch (b) {
        case 0xc0: return null;
        case 0xc2: return false;
        case 0xc3: return true;
        case 0xc4: return bin(uint(1));
        case 0xc5: n = uint(2); canonical(n > 0xff, start); return bin(n);
        case 0xc6: n = uint(4); canonical(n > 0xffff, start); return bin(n);
        case 0xcc: v = uint(1); canonical(v > 0x7f, start); return v;
        case 0xcd: v = uint(2); canonical(v > 0xff, start); return v;
        case 0xce: v = uint(4); canonical(v > 0xffff, start); return v;
        case 0xcf: v = uint(8); canonical(v > 0xffffffffn, start); return safe(v);
        case 0xd0: v = int(1); canonical(v < -32, start); return v;
        case 0xd1: v = int(2); canonical(v < -128, start); return v;
        case 0xd2: v = int(4); canonical(v < -32768, start); return v;
        case 0xd3: v = int(8); canonical(v < -2147483648n, start); return safe(v);
        case 0xd9: n = uint(1); canonical(n > 31, start); return str(n);
        case 0xda: n = uint(2); canonical(n > 0xff, start); return str(n);
        case 0xdb: n = uint(4); canonical(n > 0xffff, start); return str(n);
        case 0xdc: n = uint(2); canonical(n > 15, start); return array(n, depth, start);
        case 0xdd: n = uint(4); canonical(n > 0xffff, start); return array(n, depth, start);
        case 0xca:
        case 0xcb:
          throw new ProofFailure("malformed msgpack: floats are not allowed");
        default:
          throw new ProofFailure(`malformed msgpack: byte 0x${b.toString(16)} at ${start}`);
      }
    }

    if (!bytes.length) throw new ProofFailure("malformed msgpack: input is empty");
    const result = value(0);
    if (pos !== bytes.length) {
      throw new ProofFailure(`${bytes.length - pos} trailing bytes after the value`);
    }
    return result;
  }

  // ------------------------------------------------------------------ models

  /* Each model is a msgpack array of its fields in declaration order (ledger/encoding.py).
   * A type is a function (value, path) -> checked value; models become objects with `.raw`. */
  const T = {
    int(v, path) {
      if (typeof v !== "number" && typeof v !== "bigint") throw wrong(path, "int", v);
      return v;
    },
    bool(v, path) {
      if (typeof v !== "boolean") throw wrong(path, "bool", v);
      return v;
    },
    str(v, path) {
      if (typeof v !== "string") throw wrong(path, "str", v);
      return v;
    },
    bytes(length) {
      return (v, path) => {
        if (!(v instanceof Uint8Array)) throw wrong(path, "bytes", v);
        if (length !== undefined && v.length !== length) {
          throw new ProofFailure(`${path}: expected length ${length}, got ${v.length}`);
        }
        return v;
      };
    },
    optional(type) {
      return (v, path) => (v === null ? null : type(v, path));
    },
    list(type) {
      return (v, path) => {
        if (!Array.isArray(v)) throw wrong(path, "array", v);
        return v.map((item, i) => type(item, `${path}[${i}]`));
      };
    },
    enumOf(names) {
      return (v, path) => {
        if (typeof v !== "number" || !Object.hasOwn(names, v)) {
          throw new ProofFailure(`${path}: ${v} is not a valid value`);
        }
        return names[v];
      };
    },
    model(name, fields) {
      return (v, path) => {
        const where = path || name;
        if (!Array.isArray(v)) throw wrong(where, `${name} array`, v);
        if (v.length !== fields.length) {
          throw new ProofFailure(
            `${where}: expected ${fields.length} fields for ${name}, got ${v.length}`);
        }
        const out = { raw: v.raw };
        fields.forEach(([field, type], i) => {
          out[field] = type(v[i], `${where}.${field}`);
        });
        return out;
      };
    },
  };

  function wrong(path, expected, value) {
    const got = value === null ? "nil" : value instanceof Uint8Array ? "bytes"
      : Array.isArray(value) ? "array" : typeof value;
    return new ProofFailure(`${path}: expected ${expected}, got ${got}`);
  }

  const Hash = T.bytes(32);
  const Key = T.bytes(32);
  const Signature = T.bytes(64);
  const KINDS = { 1: "document", 2: "photo", 3: "audio", 4: "video", 5: "other" };
  const PURPOSES = {
    1: "contract", 2: "identity_document", 3: "intellectual_property", 4: "event_recording",
    5: "other",
  };
  const CERTIFICATE_STATES = { 1: "active", 2: "revoked" };

  const Checkpoint = T.model("Checkpoint", [
    ["chain_id", T.str], ["height", T.int], ["block_hash", Hash], ["state_root", Hash],
    ["log_size", T.int], ["log_root", Hash], ["time_ms", T.int],
  ]);
  const Endorsement = T.model("Endorsement", [["signer", Key], ["signature", Signature]]);
  const CheckpointCertificate = T.model("CheckpointCertificate", [
    ["checkpoint", Checkpoint], ["endorsements", T.list(Endorsement)],
  ]);
  const SmtLeaf = T.model("SmtLeaf", [["path", Hash], ["value_hash", Hash]]);
  const SmtProof = T.model("SmtProof", [["siblings", T.list(Hash)], ["leaf", T.optional(SmtLeaf)]]);
  const StateProof = T.model("StateProof", [
    ["key", T.bytes()], ["value", T.optional(T.bytes())], ["proof", SmtProof],
  ]);
  const TransactionBody = T.model("TransactionBody", [
    ["chain_id", T.str], ["sender", Key], ["family", T.str], ["operation", T.str],
    ["payload", T.bytes()], ["nonce", T.bytes(16)], ["expires_at_ms", T.int],
  ]);
  const Transaction = T.model("Transaction", [["body", TransactionBody], ["signature", Signature]]);
  const LogProof = T.model("LogProof", [
    ["transaction", Transaction], ["log_index", T.int], ["proof", T.list(Hash)],
  ]);
  const ValidatorSetChange = T.model("ValidatorSetChange", [
    ["certificate", CheckpointCertificate], ["members", StateProof],
  ]);
  const ProofBundle = T.model("ProofBundle", [
    ["chain_id", T.str], ["genesis_hash", Hash], ["certificate", CheckpointCertificate],
    ["validator_set_changes", T.list(ValidatorSetChange)], ["state", T.list(StateProof)],
    ["log", T.list(LogProof)],
  ]);
  const Member = T.model("Member", [
    ["name", T.str], ["role", T.str], ["admin_key", Key], ["node_key", Key], ["host", T.str],
    ["peer_port", T.int], ["api_port", T.int],
  ]);
  const Members = T.model("Members", [["members", T.list(Member)], ["since_height", T.int]]);
  const Evidence = T.model("Evidence", [
    ["id", Hash], ["private", T.bool], ["kind", T.enumOf(KINDS)], ["size", T.int],
    ["title", T.optional(T.str)], ["owner", Key], ["height", T.int], ["time_ms", T.int],
    ["tx_id", Hash],
  ]);
  const CertifiedEvidence = T.model("CertifiedEvidence", [
    ["id", Hash], ["kind", T.enumOf(KINDS)], ["private", T.bool], ["registered_height", T.int],
    ["registered_time_ms", T.int],
  ]);
  const Certificate = T.model("Certificate", [
    ["id", Hash], ["application_id", Hash], ["applicant", Key], ["notary_office", T.str],
    ["officer", Key], ["purpose", T.enumOf(PURPOSES)], ["evidence", T.list(CertifiedEvidence)],
    ["issued_height", T.int], ["issued_time_ms", T.int], ["issue_tx_id", Hash],
    ["state", T.enumOf(CERTIFICATE_STATES)], ["revoked_height", T.optional(T.int)],
    ["revoked_time_ms", T.optional(T.int)], ["revoked_reason", T.optional(T.str)],
  ]);

  const decodeAs = (type, bytes) => type(unpack(bytes), "");

  // ------------------------------------------------------------------ hashing, signatures

  const CHECKPOINT_DOMAIN = encoder.encode("notarychain/checkpoint/v1\0");
  const TX_DOMAIN = encoder.encode("notarychain/tx/v1\0");
  const INSTITUTIONS_KEY = encoder.encode("governance/institutions");
  const ZERO = Uint8Array.of(0);
  const ONE = Uint8Array.of(1);
  const EMPTY = new Uint8Array(32);
  const PATH_BITS = 256;

  function webCrypto() {
    if (!window.isSecureContext || !window.crypto || !crypto.subtle) {
      throw new ProofFailure(
        "this page is not a secure context (https, or http from localhost), so the browser "
        + "offers no Web Crypto to hash and check with");
    }
    return crypto.subtle;
  }

  async function sha256(...parts) {
    return new Uint8Array(await webCrypto().digest("SHA-256", concat(...parts)));
  }

  const importedKeys = new Map();

  async function ed25519Verify(publicKey, signature, message) {
    const subtle = webCrypto();
    const id = hex(publicKey);
    let key = importedKeys.get(id);
    try {
      if (key === undefined) {
        key = await subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
        importedKeys.set(id, key);
      }
      return await subtle.verify("Ed25519", key, signature, message);
    } catch (error) {
      if (error && error.name === "NotSupportedError") {
        throw new ProofFailure("this browser's Web Crypto cannot check Ed25519 signatures");
      }
      return false;
    }
  }

  function quorumSize(n) {
    const f = Math.floor((n - 1) / 3);
    return Math.floor((n + f) / 2) + 1;
  }

  // ------------------------------------------------------------------ sparse Merkle state

  const bit = (path, depth) => (path[depth >> 3] >> (7 - (depth & 7))) & 1;

  function checkedSiblings(proof) {
    const siblings = proof.siblings;
    if (siblings.length > PATH_BITS) {
      throw new ProofFailure(`the proof has ${siblings.length} siblings; paths have 256 bits`);
    }
    if (siblings.length && equal(siblings[siblings.length - 1], EMPTY)) {
      throw new ProofFailure("the deepest sibling is EMPTY, which a compact tree never has");
    }
    return siblings;
  }

  async function smtCheckRoot(root, path, siblings, end) {
    let node = end;
    for (let depth = siblings.length - 1; depth >= 0; depth--) {
      node = bit(path, depth)
        ? await sha256(ONE, siblings[depth], node)
        : await sha256(ONE, node, siblings[depth]);
    }
    if (!equal(node, root)) throw new ProofFailure("the proof does not lead to the expected root");
  }

  async function verifyStateInclusion(root, key, value, proof) {
    const path = await sha256(key);
    const siblings = checkedSiblings(proof);
    const leaf = proof.leaf;
    if (leaf === null) {
      throw new ProofFailure("the proof ends in an empty subtree, not in the key's leaf");
    }
    if (!equal(leaf.path, path)) throw new ProofFailure("the proof ends in the leaf of another key");
    if (!equal(leaf.value_hash, await sha256(value))) {
      throw new ProofFailure("the key's leaf holds the hash of a different value");
    }
    await smtCheckRoot(root, path, siblings, await sha256(ZERO, leaf.path, leaf.value_hash));
  }

  async function verifyStateExclusion(root, key, proof) {
    const path = await sha256(key);
    const siblings = checkedSiblings(proof);
    const leaf = proof.leaf;
    let end = EMPTY;
    if (leaf !== null) {
      if (equal(leaf.path, path)) {
        throw new ProofFailure("the proof ends in the key's own leaf: the key is present");
      }
      for (let d = 0; d < siblings.length; d++) {
        if (bit(leaf.path, d) !== bit(path, d)) {
          throw new ProofFailure(
            `the proof's leaf does not share the key's first ${siblings.length} path bits`);
        }
      }
      end = await sha256(ZERO, leaf.path, leaf.value_hash);
    }
    await smtCheckRoot(root, path, siblings, end);
  }

  async function checkState(root, item) {
    if (item.value === null) await verifyStateExclusion(root, item.key, item.proof);
    else await verifyStateInclusion(root, item.key, item.value, item.proof);
  }

  // ------------------------------------------------------------------ RFC 9162 log

  async function verifyLogInclusion(index, size, leafHash, proof, root) {
    if (!(index >= 0 && index < size)) {
      throw new ProofFailure(`leaf index ${index} is outside a tree of size ${size}`);
    }
    let fn = BigInt(index);
    let sn = BigInt(size) - 1n;
    let r = leafHash;
    for (const p of proof) {
      if (sn === 0n) throw new ProofFailure("inclusion proof is longer than the tree is deep");
      if (fn % 2n === 1n || fn === sn) {
        r = await sha256(ONE, p, r);
        while (fn % 2n === 0n && fn !== 0n) {
          fn >>= 1n;
          sn >>= 1n;
        }
      } else {
        r = await sha256(ONE, r, p);
      }
      fn >>= 1n;
      sn >>= 1n;
    }
    if (sn !== 0n) throw new ProofFailure("inclusion proof is shorter than the tree is deep");
    if (!equal(r, root)) {
      throw new ProofFailure("inclusion proof does not lead to the expected root");
    }
  }

  // ------------------------------------------------------------------ bundles

  function keyLabel(trust, key) {
    const name = trust.names.get(hex(key));
    return name ? `${name} (${hex(key).slice(0, 12)}…)` : hex(key);
  }

  async function verifyCertificate(certificate, validators, trust) {
    const checkpoint = certificate.checkpoint;
    if (checkpoint.chain_id !== trust.chainId) {
      throw new ProofFailure(
        `checkpoint is for chain '${checkpoint.chain_id}', not '${trust.chainId}'`);
    }
    const message = concat(CHECKPOINT_DOMAIN, checkpoint.raw);
    const members = new Set(validators.keys.map(hex));
    const seen = new Set();
    for (const endorsement of certificate.endorsements) {
      const signer = hex(endorsement.signer);
      if (seen.has(signer)) {
        throw new ProofFailure(`validator ${keyLabel(trust, endorsement.signer)} signed twice`);
      }
      if (!members.has(signer)) {
        throw new ProofFailure(`${keyLabel(trust, endorsement.signer)} is not in the validator set`);
      }
      if (!(await ed25519Verify(endorsement.signer, endorsement.signature, message))) {
        throw new ProofFailure(
          `bad signature from validator ${keyLabel(trust, endorsement.signer)}`);
      }
      seen.add(signer);
    }
    const n = validators.keys.length;
    const quorum = quorumSize(n);
    if (seen.size < quorum) {
      throw new ProofFailure(
        `${seen.size} signatures, but a quorum of ${n} validators is ${quorum}`);
    }
  }

  /* ledger.proofs.verify_bundle, in the browser. `note` receives each check that passed. */
  async function verifyBundle(bytes, trust, note) {
    const bundle = decodeAs(ProofBundle, bytes);
    note("the bundle is canonical msgpack of a ProofBundle");
    if (bundle.chain_id !== trust.chainId) {
      throw new ProofFailure(`the bundle is for chain '${bundle.chain_id}', not '${trust.chainId}'`);
    }
    if (hex(bundle.genesis_hash) !== trust.genesisHash) {
      throw new ProofFailure("the bundle was made under another genesis");
    }
    note(`made for chain ${trust.chainId} under genesis ${trust.genesisHash.slice(0, 16)}…`);
    let validators = { fromHeight: 0, keys: trust.validators };
    for (const change of bundle.validator_set_changes) {
      const certified = change.certificate.checkpoint;
      await verifyCertificate(change.certificate, validators, trust);
      if (!equal(change.members.key, INSTITUTIONS_KEY) || change.members.value === null) {
        throw new ProofFailure("a validator-set change must prove the members record");
      }
      await checkState(certified.state_root, change.members);
      const members = decodeAs(Members, change.members.value);
      if (!sameInt(members.since_height, certified.height)) {
        throw new ProofFailure("the members record did not change at the certified height");
      }
      const keys = members.members.map((m) => m.node_key);
      if (!keys.length || new Set(keys.map(hex)).size !== keys.length) {
        throw new ProofFailure("a validator set lists each key once and is never empty");
      }
      validators = { fromHeight: BigInt(certified.height) + 1n, keys };
      note(`validator set changed at height ${certified.height} (${keys.length} validators)`);
    }
    const checkpoint = bundle.certificate.checkpoint;
    if (BigInt(checkpoint.height) < BigInt(validators.fromHeight)) {
      throw new ProofFailure("the checkpoint is older than the validator set it claims");
    }
    try {
      await verifyCertificate(bundle.certificate, validators, trust);
    } catch (error) {
      if (error instanceof ProofFailure) {
        throw new ProofFailure(`checkpoint at height ${checkpoint.height}: ${error.message}`);
      }
      throw error;
    }
    const signers = bundle.certificate.endorsements.map((e) => e.signer);
    note(`checkpoint at height ${checkpoint.height} signed by ${signers.length} of `
      + `${validators.keys.length} validators (quorum ${quorumSize(validators.keys.length)}), `
      + "every Ed25519 signature valid");
    const state = new Map();
    for (const item of bundle.state) {
      await checkState(checkpoint.state_root, item);
      state.set(hex(item.key), item.value);
    }
    if (bundle.state.length) {
      note(`${bundle.state.length} sparse Merkle state proof(s) lead to the certified state root`);
    }
    const transactions = [];
    for (const entry of bundle.log) {
      if (!(entry.log_index >= 0 && entry.log_index < checkpoint.log_size)) {
        throw new ProofFailure(`log index ${entry.log_index} is outside the certified log`);
      }
      await verifyLogInclusion(entry.log_index, checkpoint.log_size,
        await sha256(ZERO, entry.transaction.raw), entry.proof, checkpoint.log_root);
      transactions.push({
        id: await sha256(TX_DOMAIN, entry.transaction.body.raw),
        transaction: entry.transaction,
        logIndex: entry.log_index,
      });
    }
    if (bundle.log.length) {
      note(`${bundle.log.length} transaction(s) included in the certified log (RFC 9162)`);
    }
    return { checkpoint, signers, validators, state, transactions };
  }

  /* A proof document {"format", "chain_id", "height", "state_root", "bundle"}, checked. */
  async function verifyProofDocument(documentJson, trust, note) {
    if (!documentJson || documentJson.format !== PROOF_FORMAT) {
      throw new ProofFailure(`not a ${PROOF_FORMAT} document`);
    }
    const verified = await verifyBundle(fromBase64(documentJson.bundle), trust, note);
    const checkpoint = verified.checkpoint;
    if (documentJson.chain_id !== trust.chainId
        || !sameInt(documentJson.height, checkpoint.height)
        || documentJson.state_root !== hex(checkpoint.state_root)) {
      throw new ProofFailure("the document's summary does not match its bundle");
    }
    return verified;
  }

  function valueIn(verified, key, what) {
    const id = hex(key);
    if (!verified.state.has(id)) throw new ProofFailure(`the proof does not cover this ${what}`);
    return verified.state.get(id);
  }

  // ------------------------------------------------------------------ genesis (trust anchor)

  /* Python's json.dumps(..., sort_keys=True, separators=(",", ":")) with ensure_ascii. */
  function canonicalJson(value) {
    if (value === null) return "null";
    if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
    switch (typeof value) {
      case "object":
        return `{${Object.keys(value).sort()
          .map((k) => `${asciiJson(k)}:${canonicalJson(value[k])}`).join(",")}}`;
      case "string":
        return asciiJson(value);
      case "boolean":
        return value ? "true" : "false";
      case "number":
        if (!Number.isSafeInteger(value)) throw new Error("the genesis holds a non-integer");
        return String(value);
      default:
        throw new Error(`unexpected ${typeof value} in the genesis`);
    }
  }

  function asciiJson(text) {
    return JSON.stringify(text).replace(/[\u007f-\uffff]/g,
      (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
  }

  async function trustFrom(genesis, source) {
    const genesisHash = hex(await sha256(encoder.encode(canonicalJson(genesis))));
    const names = new Map();
    for (const institution of genesis.institutions) {
      names.set(institution.node.key, `${institution.name} node`);
      names.set(institution.admin_key, `${institution.name} admin`);
    }
    for (const identity of genesis.identities || []) names.set(identity.key, identity.name);
    return {
      source,
      chainId: genesis.chain_id,
      genesisHash,
      validators: genesis.institutions.map((i) => fromHex(i.node.key)),
      institutions: genesis.institutions.map((i) => i.name),
      names,
    };
  }

  const app = {
    status: null,
    nodeTrust: null, // from this node's GET /v1/genesis
    fileTrust: null, // from a genesis file the user chose
    members: null, // from GET /v1/members: the validators, in order
    membersHeight: null,
    route: 0,
    polling: false,
    shownHeight: null,
  };

  const trust = () => app.fileTrust || app.nodeTrust;

  async function loadNodeTrust() {
    if (!app.nodeTrust) app.nodeTrust = await trustFrom(await api("/v1/genesis"), "this node");
    return app.nodeTrust;
  }

  /* A readable name for a key the genesis names (node, admin, identity), else null. */
  function nameOf(key) {
    const t = trust();
    return (t && t.names.get(key)) || null;
  }

  // ------------------------------------------------------------------ API

  async function api(path) {
    let response;
    try {
      response = await fetch(path, {
        headers: { Accept: "application/json" },
        cache: "no-store",
        signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
      });
    } catch {
      throw new ApiError(0, "unreachable", "this node did not answer");
    }
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    if (!response.ok) {
      const error = body && body.error;
      throw new ApiError(response.status, error ? error.code : `http_${response.status}`,
        error ? error.message : response.statusText);
    }
    return body;
  }

  async function apiOrNull(path) {
    try {
      return await api(path);
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) return null;
      throw error;
    }
  }

  /* A proof the node cannot give yet (no checkpoint covers the record): retry, bounded. */
  async function proofDocument(path, onWait) {
    for (let attempt = 0; ; attempt++) {
      try {
        return await api(path);
      } catch (error) {
        if (!(error instanceof ApiError) || error.code !== "not_yet_provable"
            || attempt >= PROOF_RETRIES) {
          throw error;
        }
        onWait(attempt);
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    }
  }

  // ------------------------------------------------------------------ DOM helpers

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") node.className = value;
      else if (name === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    append(node, children);
    return node;
  }

  function append(node, children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const $ = (id) => document.getElementById(id);
  function iso(ms) {
    const date = new Date(Number(ms));
    return ms === null || ms === undefined || Number.isNaN(date.getTime())
      ? String(ms ?? "") : date.toISOString();
  }

  const short = (h) => `${h.slice(0, 12)}…`;
  const link = (href, text, attrs = {}) => el("a", { href, ...attrs }, text);
  const hashText = (h) => el("code", { class: "hash" }, h);
  const txLink = (id) => link(`#/tx/${id}`, el("code", {}, short(id)), { title: id });
  const blockLink = (h) => link(`#/block/${h}`, String(h));
  const keyText = (key) => (nameOf(key)
    ? el("span", { title: key }, nameOf(key), " ", el("code", { class: "muted" }, short(key)))
    : el("code", { title: key }, short(key)));
  const badge = (text, kind) => el("span", { class: `badge ${kind || ""}` }, text);

  function fieldsTable(rows, attrs = {}) {
    return el("table", { class: "fields", ...attrs },
      rows.filter(Boolean).map(([label, value, id]) =>
        el("tr", {}, el("th", {}, label), el("td", { id }, value))));
  }

  function dataTable(headings, rows, attrs = {}) {
    return el("table", attrs,
      el("thead", {}, el("tr", {}, headings.map((h) => el("th", {}, h)))),
      el("tbody", {}, rows));
  }

  function show(token, ...children) {
    if (token !== app.route) return false;
    $("view").replaceChildren(...children.flat().filter(Boolean));
    return true;
  }

  function problem(error) {
    if (error instanceof ApiError) {
      return `${error.message}${error.code ? ` (${error.code})` : ""}`;
    }
    return error && error.message ? error.message : String(error);
  }

  function failure(token, title, error) {
    show(token, el("section", {}, el("h1", {}, title), el("p", { class: "error" }, problem(error))));
  }

  /* A proof check's visible outcome: the result line and the list of checks made. */
  function proofPanel() {
    const result = el("div", { id: "proof-result", class: "result" }, "checking the proof…");
    const checks = el("ul", { id: "proof-checks", class: "checks" });
    return {
      node: el("div", {}, el("h2", {}, "Proof, checked in this browser"), result, checks,
        el("p", { class: "note" },
          `Trust anchor: the genesis from ${trust() ? trust().source : "this node"}.`)),
      note: (text) => checks.append(el("li", {}, text)),
      wait: (attempt) => {
        result.textContent = `waiting for a checkpoint that covers it… (${attempt + 1})`;
      },
      pass: (text = "proof verified") => {
        result.textContent = text;
        result.className = "result ok";
      },
      fail: (reason) => {
        result.textContent = `proof failed: ${reason}`;
        result.className = "result bad";
      },
    };
  }

  async function runProof(panel, check) {
    try {
      await check();
      panel.pass();
    } catch (error) {
      panel.fail(problem(error));
    }
  }

  // ------------------------------------------------------------------ header and overview

  function renderStatus(status, error) {
    const line = $("node-status");
    if (!status) {
      line.className = "node-status down";
      line.replaceChildren(el("span", { class: "dot" }), `this node did not answer (${error})`);
      return;
    }
    $("chain-id").textContent = status.chain_id;
    const names = app.members ? app.members.map((m) => m.name)
      : trust() ? trust().institutions : [];
    const primary = names[status.primary] || `replica ${status.primary}`;
    line.className = "node-status";
    line.replaceChildren();
    append(line, [
      el("span", { class: "dot" }),
      `${status.institution} · height ${status.height} · view ${status.view}`
        + `${status.view_active ? "" : " (changing)"} · primary ${primary}`
        + ` · mempool ${status.mempool}`
        + `${status.catch_up ? ` · catching up to ${status.catch_up.to}` : ""}`
        + ` · ${new Date().toISOString().slice(11, 19)} UTC`,
      app.nodeTrust && app.nodeTrust.genesisHash !== status.genesis_hash
        ? badge("its genesis does not hash to the genesis hash it reports", "bad") : null,
    ]);
  }

  function membersTable(status) {
    const peers = new Map(status.peers.map((p) => [p.institution, p]));
    const members = app.members || [];
    const rows = members.map((m, index) => {
      const self = m.name === status.institution;
      const peer = peers.get(m.name);
      const reach = self ? badge("this node", "ok")
        : peer ? badge(peer.reachable ? "reachable" : "unreachable", peer.reachable ? "ok" : "bad")
          : badge("unknown", "warn");
      const height = self ? status.height : peer && peer.height !== null ? peer.height : "–";
      return el("tr", { class: "member", dataset: { name: m.name } },
        el("td", {}, m.name, index === status.primary ? [" ", badge("primary")] : null),
        el("td", {}, m.role),
        el("td", {}, el("code", { title: m.node_key }, short(m.node_key))),
        el("td", {}, link(`http://${m.host}:${m.api_port}/`, `${m.host}:${m.api_port}`)),
        el("td", { class: "reachability" }, reach),
        el("td", {}, String(height)));
    });
    return dataTable(["Institution", "Role", "Node key", "API", "Reachability", "Height"], rows,
      { id: "members" });
  }

  function blockTransactions(block) {
    if (!block.transactions.length) return el("span", { class: "muted" }, "none");
    const hidden = block.tx_count - block.transactions.length;
    return el("ul", {},
      block.transactions.map((t) => el("li", {}, txLink(t.id), ` ${t.family}.${t.operation}`,
        t.code !== "ok" ? [" ", badge(t.code || "?", "bad")] : null)),
      hidden > 0 ? el("li", {}, link(`#/block/${block.height}`, `and ${hidden} more`)) : null);
  }

  function blocksTable(blocks) {
    const rows = blocks.map((b) => el("tr", { class: "block", dataset: { height: b.height } },
      el("td", {}, blockLink(b.height)),
      el("td", {}, iso(b.time_ms)),
      el("td", {}, keyText(b.proposer)),
      el("td", {}, blockTransactions(b))));
    return dataTable(["Height", "Time (UTC)", "Proposer", "Transactions"], rows, { id: "blocks" });
  }

  /* The consortium as the chain's state records it now (the genesis until governance). */
  async function loadMembers() {
    app.members = (await api("/v1/members")).members;
  }

  async function viewHome(token) {
    show(token,
      el("section", { id: "home-members" }, el("h1", {}, "Consortium"),
        el("p", { class: "muted" }, "loading…")),
      el("section", { id: "home-blocks" }, el("h1", {}, "Latest blocks"),
        el("p", { class: "muted" }, "loading…")));
    app.shownHeight = null;
    await refreshHome(token);
  }

  /* Called on arrival and by every poll while the overview is shown. */
  async function refreshHome(token) {
    const status = app.status;
    if (!status || token !== app.route || !$("home-members")) return;
    if (!app.members || app.membersHeight !== status.height) {
      await loadMembers();
      app.membersHeight = status.height;
    }
    const membersBox = $("home-members");
    const blocksBox = $("home-blocks");
    if (token !== app.route || !membersBox || !blocksBox) return;
    membersBox.replaceChildren(el("h1", {}, "Consortium"),
      el("p", { class: "muted" }, `${app.members.length} institutions; every node is a validator. `
        + "Reachability and heights as this node sees them."),
      membersTable(status));
    if (app.shownHeight === status.height) return;
    const list = await api(`/v1/blocks?limit=${BLOCKS_SHOWN}`);
    if (token !== app.route || !blocksBox.isConnected) return;
    app.shownHeight = status.height;
    blocksBox.replaceChildren(el("h1", {}, "Latest blocks"),
      list.blocks.length ? blocksTable(list.blocks) : el("p", { class: "muted" }, "no blocks yet"));
  }

  // ------------------------------------------------------------------ block, transaction

  async function blockSummary(height) {
    const list = await api(`/v1/blocks?to=${height}&limit=1`);
    const block = list.blocks[0];
    return block && sameInt(block.height, height) ? block : null;
  }

  async function viewBlock(token, heightText) {
    if (!/^\d{1,18}$/.test(heightText)) throw new Error("a block height is a whole number");
    const height = Number(heightText);
    const block = height >= 1 ? await blockSummary(height) : null;
    if (!block) {
      show(token, el("section", { id: "block" }, el("h1", {}, `Block ${height}`),
        el("p", {}, "no block at this height yet")));
      return;
    }
    const rows = block.transactions.map((t) => el("tr", { class: "tx", dataset: { id: t.id } },
      el("td", {}, link(`#/tx/${t.id}`, el("code", { class: "hash" }, t.id))),
      el("td", {}, `${t.family}.${t.operation}`),
      el("td", {}, keyText(t.sender)),
      el("td", {}, t.code === "ok" ? badge("ok", "ok") : badge(t.code || "?", "bad"))));
    let more = null;
    if (block.tx_count > block.transactions.length) {
      const full = await api(`/v1/blocks/${height}`);
      more = el("p", {}, `and ${block.tx_count - block.transactions.length} more: `,
        full.transactions.slice(block.transactions.length).map((id) => [txLink(id), " "]));
    }
    show(token, el("div", { id: "block", dataset: { height: block.height } }, el("section", {},
      el("h1", {}, `Block ${block.height}`),
      fieldsTable([
        ["Hash", hashText(block.hash)],
        ["Time", `${iso(block.time_ms)} (trusted time of everything in it)`],
        ["Proposer", keyText(block.proposer)],
        ["View", String(block.view)],
        ["Previous", block.height > 1 ? link(`#/block/${block.height - 1}`, block.previous_hash)
          : hashText(block.previous_hash)],
        ["Transaction root", hashText(block.tx_root)],
        ["Next", link(`#/block/${block.height + 1}`, `block ${block.height + 1}`)],
      ])),
    el("section", {}, el("h2", {}, `Transactions (${block.tx_count})`),
      rows.length ? dataTable(["Id", "Operation", "Sender", "Outcome"], rows)
        : el("p", { class: "muted" }, "none"), more)));
  }

  function plain(value) {
    if (value instanceof Uint8Array) return hex(value);
    if (typeof value === "bigint") return value.toString();
    if (Array.isArray(value)) return value.map(plain);
    return value;
  }

  function hashesIn(value, found = new Set()) {
    if (typeof value === "string" && /^[0-9a-f]{64}$/.test(value)) found.add(value);
    else if (Array.isArray(value)) value.forEach((v) => hashesIn(v, found));
    return found;
  }

  async function viewTransaction(token, id) {
    const status = await api(`/v1/transactions/${id}`);
    const summary = status.height ? await blockSummary(status.height) : null;
    const entry = summary && summary.transactions.find((t) => t.id === id);
    let result = null;
    if (status.result) {
      try {
        result = plain(unpack(fromHex(status.result)));
      } catch {
        result = status.result;
      }
    }
    const related = [];
    if (entry && entry.family === "notarization" && entry.operation === "apply"
        && status.state === "committed") {
      related.push(link(`#/application/${id}`, "the application it made"));
    }
    for (const h of hashesIn(result)) {
      if (h !== id) related.push(link(`#/search/${h}`, el("code", {}, short(h))));
    }
    const stateKind = status.state === "committed" ? "ok" : status.state === "rejected" ? "bad" : "warn";
    show(token, el("section", { id: "transaction", dataset: { id } },
      el("h1", {}, "Transaction"),
      fieldsTable([
        ["Id", hashText(id)],
        ["State", badge(status.state, stateKind), "tx-state"],
        entry && ["Operation", `${entry.family}.${entry.operation}`],
        entry && ["Sender", keyText(entry.sender)],
        status.height && ["Block", blockLink(status.height)],
        summary && ["Time", iso(summary.time_ms)],
        status.index !== undefined && ["Position", `${status.index} in its block; `
          + `${status.log_index} in the chain's log`],
        status.reason && ["Refused because", status.reason],
        result !== null && ["Result", el("pre", {}, JSON.stringify(result))],
        related.length && ["Related", related.map((r) => [r, " "])],
        status.state === "committed" && ["Proof", link(`/v1/proofs/transactions/${id}`,
          "inclusion proof (JSON)")],
      ])));
  }

  // ------------------------------------------------------------------ evidence

  function evidenceRows(record) {
    return [
      ["Evidence id", hashText(record.id)],
      ["Kind", record.kind],
      ["Size", `${record.size} bytes`],
      ["Title", record.title === null ? el("span", { class: "muted" }, "none") : record.title],
      ["Trusted time", el("span", { id: "trusted-time" }, iso(record.time_ms)), null],
      ["Height", blockLink(record.height)],
      ["Registered by", keyText(record.owner)],
      ["Transaction", txLink(record.tx_id)],
      ["Private", record.private ? "yes (a salted commitment, not the content hash)" : "no"],
    ];
  }

  /* The proof of an evidence record: the record under a certified state root, its id, and
   * the transaction that registered it in the certified log; the node's answer must agree. */
  async function checkEvidenceProof(panel, id, record, idIs) {
    await runProof(panel, async () => {
      const t = trust() || (await loadNodeTrust());
      const documentJson = await proofDocument(`/v1/proofs/evidence/${id}`, panel.wait);
      const verified = await verifyProofDocument(documentJson, t, panel.note);
      const key = concat(encoder.encode("evidence/"), fromHex(id));
      const bytes = valueIn(verified, key, "evidence record");
      if (bytes === null) throw new ProofFailure("the proof shows this evidence is absent");
      const proven = decodeAs(Evidence, bytes);
      if (hex(proven.id) !== id) throw new ProofFailure(`the proven record's id is not ${idIs}`);
      panel.note(`the proven record's id equals ${idIs}`);
      const claimed = [
        ["id", hex(proven.id)], ["kind", proven.kind], ["size", proven.size],
        ["title", proven.title], ["height", proven.height], ["time_ms", proven.time_ms],
        ["tx_id", hex(proven.tx_id)], ["owner", hex(proven.owner)], ["private", proven.private],
      ];
      for (const [field, value] of claimed) {
        if (!same(record[field], value)) {
          throw new ProofFailure(`the node's answer (${field}) differs from the proven record`);
        }
      }
      panel.note("the record shown is the proven record (kind, size, title, time, height)");
      if (!verified.transactions.some((entry) => equal(entry.id, proven.tx_id))) {
        throw new ProofFailure("the proof does not include the registering transaction");
      }
      panel.note("the registering transaction is in the certified log");
    });
  }

  async function viewEvidence(token, id) {
    const record = await api(`/v1/evidence/${id}`);
    const panel = proofPanel();
    show(token, el("section", { id: "evidence" }, el("h1", {}, "Evidence"),
      fieldsTable(evidenceRows(record), { id: "evidence-record" })),
    el("section", {}, panel.node));
    await checkEvidenceProof(panel, id, record, "the id asked for");
  }

  // ------------------------------------------------------------------ verify a file

  function viewVerify(token) {
    const input = el("input", { id: "file-input", type: "file" });
    const zone = el("label", { id: "drop-zone", class: "drop-zone", for: "file-input" },
      el("strong", {}, "Drop a file here, or choose one"),
      el("div", { class: "note" }, "It is hashed (SHA-256) in this browser and never leaves "
        + "this machine; only its hash is looked up."),
      input);
    const output = el("div", { id: "verify-output" });
    let chosen = null; // the file last checked: checked again when the trust anchor changes
    const check = (file) => {
      chosen = file;
      verifyFile(file, output);
    };
    const genesisInput = el("input", { id: "genesis-input", type: "file", accept: ".json" });
    const anchor = el("p", { class: "note", id: "trust-anchor" });
    const describeAnchor = () => {
      const t = trust();
      anchor.replaceChildren(t ? `Proofs are checked against the genesis from ${t.source}`
        + ` (chain ${t.chainId}, genesis ${short(t.genesisHash)}). ` : "",
      "To check against a genesis.json you hold, choose it: ", genesisInput);
    };
    genesisInput.addEventListener("change", async () => {
      const file = genesisInput.files[0];
      if (!file) return;
      try {
        app.fileTrust = await trustFrom(JSON.parse(await file.text()), `the file ${file.name}`);
      } catch (error) {
        anchor.append(el("span", { class: "error" }, ` not a genesis: ${problem(error)}`));
        return;
      }
      describeAnchor();
      genesisInput.value = "";
      if (chosen) check(chosen);
    });
    input.addEventListener("change", () => {
      const file = input.files[0];
      input.value = ""; // so that choosing the same file again checks it again
      if (file) check(file);
    });
    zone.addEventListener("dragover", (event) => {
      event.preventDefault();
      zone.classList.add("dragging");
    });
    zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("dragging");
      const file = event.dataTransfer && event.dataTransfer.files[0];
      if (file) check(file);
    });
    show(token, el("section", {}, el("h1", {}, "Verify a file"),
      el("p", {}, "Find out whether a file was registered on this chain, and when: "
        + "the trusted time is the time of the block that registered it, and the proof below "
        + "is checked here, not taken on the node's word."),
      zone, anchor), output);
    describeAnchor();
    loadNodeTrust().then(describeAnchor, () => {});
  }

  async function verifyFile(file, output) {
    const token = app.route;
    const hashLine = el("span", { id: "file-hash" }, "hashing…");
    const result = el("div", { id: "verify-result", class: "result" }, "looking it up…");
    const box = el("section", {}, el("h2", {}, file.name), result,
      fieldsTable([["Size", `${file.size} bytes`], ["SHA-256 (computed here)", hashLine]]));
    output.replaceChildren(box);
    const stop = (text, kind) => {
      result.textContent = text;
      result.className = `result ${kind}`;
    };
    if (file.size > HASH_FILE_BYTES_MAX) {
      stop("error: files over 2 GiB are hashed with the command line: notarychain evidence find "
        + "--file PATH", "bad");
      return;
    }
    let id;
    try {
      id = hex(await sha256(new Uint8Array(await file.arrayBuffer())));
    } catch (error) {
      stop(`error: ${problem(error)}`, "bad");
      return;
    }
    if (token !== app.route) return;
    hashLine.replaceChildren(hashText(id));
    let record;
    try {
      record = await apiOrNull(`/v1/evidence/${id}`);
    } catch (error) {
      stop(`error: ${problem(error)}`, "bad");
      return;
    }
    const panel = proofPanel();
    if (record === null) {
      stop("not registered", "warn");
      box.append(el("p", { class: "note" }, "No evidence with this SHA-256 is on the chain. "
        + "(A file registered privately is found only with its salt: use the command line.)"),
      panel.node);
      await checkAbsence(panel, id);
      return;
    }
    stop("registered", "ok");
    box.append(fieldsTable(evidenceRows(record), { id: "evidence-record" }), panel.node);
    await checkEvidenceProof(panel, id, record, "the file's SHA-256");
  }

  /* For an unregistered file: the node proves the evidence key is absent from the state. */
  async function checkAbsence(panel, id) {
    try {
      const t = trust() || (await loadNodeTrust());
      const key = concat(encoder.encode("evidence/"), fromHex(id));
      const documentJson = await proofDocument(`/v1/proofs/state/${hex(key)}`, panel.wait);
      const verified = await verifyProofDocument(documentJson, t, panel.note);
      if (valueIn(verified, key, "evidence key") !== null) {
        throw new ProofFailure("the proof shows the evidence is present");
      }
      panel.note("the state proof shows no record under this id");
      panel.pass(`absence proven at height ${verified.checkpoint.height}`);
    } catch (error) {
      panel.fail(problem(error));
    }
  }

  // ------------------------------------------------------------------ applications, certificates

  async function viewApplication(token, id) {
    const a = await api(`/v1/applications/${id}`);
    const findings = a.findings.map((f) => el("tr", {},
      el("td", {}, f.check.replaceAll("_", " ")),
      el("td", {}, badge(f.passed ? "passed" : "failed", f.passed ? "ok" : "bad")),
      el("td", {}, f.detail)));
    const history = a.history.map((e) => el("tr", {},
      el("td", {}, e.step.replaceAll("_", " ")),
      el("td", {}, iso(e.time_ms)),
      el("td", {}, blockLink(e.height)),
      el("td", {}, keyText(e.actor)),
      el("td", {}, txLink(e.tx_id)),
      el("td", {}, e.detail)));
    show(token, el("div", { id: "application" }, el("section", {}, el("h1", {}, "Application"),
      fieldsTable([
        ["Id", hashText(a.id)],
        ["State", badge(a.state, a.state === "issued" ? "ok" : a.state === "pending" ? "warn" : "bad")],
        ["Purpose", a.purpose.replaceAll("_", " ")],
        ["Description", a.description],
        ["Applicant", keyText(a.applicant)],
        ["Institution", a.institution],
        ["Evidence", a.evidence_ids.map((e) => [link(`#/evidence/${e}`, el("code", {}, short(e))), " "])],
        ["Audit recommends", a.recommendation],
        ["Fee held", String(a.fee_held)],
        a.certificate_id && ["Certificate", link(`#/certificate/${a.certificate_id}`, a.certificate_id)],
      ])),
    el("section", {}, el("h2", {}, "Automated audit findings"),
      dataTable(["Check", "Outcome", "Detail"], findings, { id: "findings" })),
    el("section", {}, el("h2", {}, "History"),
      dataTable(["Step", "Time (UTC)", "Height", "By", "Transaction", "Detail"], history,
        { id: "history" }))));
  }

  async function viewCertificate(token, id) {
    const c = await api(`/v1/certificates/${id}`);
    const application = await apiOrNull(`/v1/applications/${c.application_id}`);
    const signers = el("span", { id: "certificate-signers" }, "checking…");
    const panel = proofPanel();
    const revoked = c.state === "revoked";
    const evidence = c.evidence.map((e) => el("tr", {},
      el("td", {}, link(`#/evidence/${e.id}`, el("code", { class: "hash" }, e.id))),
      el("td", {}, e.kind), el("td", {}, iso(e.registered_time_ms)),
      el("td", {}, blockLink(e.registered_height))));
    show(token, el("div", { id: "certificate" }, el("section", {},
      el("h1", {}, "Notarial certificate"),
      fieldsTable([
        ["Status", badge(c.state, revoked ? "bad" : "ok"), "certificate-status"],
        revoked && ["Revoked", `${iso(c.revoked_time_ms)} at height ${c.revoked_height}: `
          + `${c.revoked_reason}`],
        ["Certificate id", hashText(c.id)],
        ["Purpose", c.purpose.replaceAll("_", " ")],
        ["Decision", [`issued ${iso(c.issued_time_ms)} at height `, blockLink(c.issued_height),
          " by ", keyText(c.officer), ` for ${c.notary_office}`,
          application ? `; the automated audit recommended: ${application.recommendation}` : ""]],
        ["Decision transaction", txLink(c.issue_tx_id)],
        ["Applicant", keyText(c.applicant)],
        ["Application", link(`#/application/${c.application_id}`, c.application_id)],
        ["Proven by signatures of", signers],
        ["Documents", [link(`/v1/certificates/${id}/html`, "printable certificate with QR code",
          { target: "_blank", rel: "noopener" }), " · ",
        link(`/v1/certificates/${id}/document`, "certificate document (JSON, with its proof)")]],
      ])),
    el("section", {}, el("h2", {}, "Evidence"),
      dataTable(["Id (SHA-256 or commitment)", "Kind", "Registered (UTC)", "Height"], evidence)),
    el("section", {}, panel.node)));
    await runProof(panel, async () => {
      const t = trust() || (await loadNodeTrust());
      const issued = await proofDocument(`/v1/certificates/${id}/document`, panel.wait);
      const verified = await verifyProofDocument(issued.proof, t, panel.note);
      const bytes = valueIn(verified, concat(encoder.encode("certificate/"), fromHex(id)),
        "certificate");
      if (bytes === null) throw new ProofFailure("the proof shows no such certificate");
      const proven = decodeAs(Certificate, bytes);
      if (hex(proven.id) !== id) throw new ProofFailure("the proof is of another certificate");
      const shownAndProven = [
        ["status", issued.status, proven.state],
        ["state", c.state, proven.state],
        ["application", c.application_id, hex(proven.application_id)],
        ["officer", c.officer, hex(proven.officer)],
        ["decision time", c.issued_time_ms, proven.issued_time_ms],
        ["revocation", c.revoked_reason, proven.revoked_reason],
        ["evidence", c.evidence.map((e) => e.id).join(), proven.evidence.map((e) => hex(e.id)).join()],
      ];
      for (const [field, shown, value] of shownAndProven) {
        if (!same(shown, value)) {
          throw new ProofFailure(`the node's answer (${field}) differs from the proven certificate`);
        }
      }
      panel.note(`the certificate is proven ${proven.state} as of height `
        + `${verified.checkpoint.height}, and matches what is shown`);
      signers.replaceChildren(
        verified.signers.map((s) => nameOf(hex(s)) || short(hex(s))).join(", "));
    });
    if (signers.textContent === "checking…") signers.textContent = "(not proven)";
  }

  // ------------------------------------------------------------------ search

  async function viewSearch(token, query) {
    const q = query.trim().toLowerCase().replace(/^0x/, "");
    $("search-input").value = q;
    if (/^\d{1,18}$/.test(q)) {
      location.replace(`#/block/${Number(q)}`);
      return;
    }
    if (!/^[0-9a-f]{64}$/.test(q)) {
      show(token, el("section", { id: "search-results" }, el("h1", {}, "Search"),
        el("p", {}, "Enter a transaction, evidence, application or certificate id "
          + "(64 hex digits), or a block height.")));
      return;
    }
    const kinds = [
      ["transaction", `/v1/transactions/${q}`, `#/tx/${q}`],
      ["application", `/v1/applications/${q}`, `#/application/${q}`],
      ["certificate", `/v1/certificates/${q}`, `#/certificate/${q}`],
      ["evidence", `/v1/evidence/${q}`, `#/evidence/${q}`],
    ];
    const answers = await Promise.all(kinds.map(([, path]) => apiOrNull(path)));
    const found = kinds.filter((_, i) => answers[i] !== null);
    if (token !== app.route) return;
    if (found.length === 1) {
      location.replace(found[0][2]);
      return;
    }
    show(token, el("section", { id: "search-results" }, el("h1", {}, "Search"),
      el("p", {}, hashText(q)),
      found.length
        ? el("ul", {}, found.map(([kind, , href]) => el("li", {}, link(href, `the ${kind}`))))
        : el("p", {}, "Nothing on this chain has this id (as a transaction, evidence, "
          + "application or certificate).")));
  }

  // ------------------------------------------------------------------ routing and polling

  const ID = /^[0-9a-f]{64}$/;

  async function route() {
    const token = ++app.route;
    const [path, queryText] = location.hash.replace(/^#/, "").split("?");
    const query = new URLSearchParams(queryText || "");
    const parts = path.split("/").filter(Boolean);
    const [page, arg] = [parts[0] || "", parts.slice(1).join("/")];
    const needsId = (fn) => (ID.test(arg) ? fn(token, arg)
      : failure(token, "Not an id", new Error("ids are 64 lowercase hex digits")));
    window.scrollTo(0, 0);
    try {
      switch (page) {
        case "": return await viewHome(token);
        case "verify": {
          const certificate = query.get("certificate");
          if (certificate && ID.test(certificate)) return await viewCertificate(token, certificate);
          return viewVerify(token);
        }
        case "block": return await viewBlock(token, arg);
        case "tx": return await needsId(viewTransaction);
        case "evidence": return await needsId(viewEvidence);
        case "application": return await needsId(viewApplication);
        case "certificate": return await needsId(viewCertificate);
        case "search": return await viewSearch(token, decodeURIComponent(arg));
        default: return failure(token, "Not found", new Error(`no page ${path}`));
      }
    } catch (error) {
      failure(token, "Could not show this", error);
    }
    return undefined;
  }

  async function poll() {
    if (app.polling) return;
    app.polling = true;
    try {
      app.status = await api("/v1/status");
      renderStatus(app.status);
    } catch (error) {
      renderStatus(null, problem(error));
      app.polling = false;
      return;
    }
    try {
      await refreshHome(app.route);
    } catch {
      // the overview stays as it was; the next poll tries again
    } finally {
      app.polling = false;
    }
  }

  async function start() {
    $("search-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const q = $("search-input").value.trim();
      const target = `#/search/${encodeURIComponent(q)}`;
      if (q && location.hash === target) route();
      else if (q) location.hash = target;
    });
    window.addEventListener("hashchange", route);
    try {
      await loadNodeTrust();
    } catch {
      // shown by the first poll, and retried whenever a proof is checked
    }
    await poll();
    route();
    setInterval(poll, POLL_MS);
  }

  start();
})();
