// Package vault is the wallet's cryptography: how stored upstream API keys
// are encrypted, bound to their owner, rotated and destroyed. It has no
// database or HTTP code: Service keeps the blobs it makes through the
// apiwallet.KeyStore interface.
//
// # Envelope encryption
//
// One root key (ENCRYPTION_KEY, see ParseRootKey) protects everything, but
// never touches a secret directly:
//
//	root key --HKDF-SHA256--> key-encryption key (KEK, in a Keyring)
//	KEK --AES-256-GCM, bound to the workspace id--> wrapped data key (DEK), one per workspace
//	DEK --HKDF--> sealing key --AES-256-GCM, bound to workspace id + key id--> sealed secret
//	DEK --HKDF--> fingerprint key --HMAC-SHA256--> fingerprint (duplicate detection)
//
// Why the layers:
//
//   - Rotating the root key only rewraps one small DEK per workspace
//     (Keyring.RewrapDataKey); no secret has to be decrypted or re-sealed.
//     Each wrapped DEK records the version of the root that wrapped it
//     (WrappedVersion), so a rotation can be resumed and audited.
//   - Each workspace has its own DEK, so a bug or a leaked DEK exposes one
//     workspace, never all of them.
//   - Every ciphertext authenticates where it belongs (workspace id for a
//     DEK; workspace id and key id for a secret). A ciphertext copied to
//     another row or workspace in the database fails to open rather than
//     yielding someone else's key.
//   - The root is only ever used through HKDF with a purpose label, and the
//     DEK likewise, so no key serves two algorithms.
//
// # Crypto-shredding
//
// Deleting a workspace's wrapped DEK makes every secret sealed under it, and
// every fingerprint keyed from it, permanently unrecoverable, including
// copies left in backups and replicas. That is how erasure (account
// deletion, GDPR) reaches data this service cannot otherwise chase down.
//
// # Service and the root key's life
//
// Service is what the rest of the wallet uses: it creates, lists, updates,
// rotates and deletes keys, and Reveal hands the proxy one plaintext
// secret for one request. The database records the current root key
// version and a check value wrapped under it (apiwallet.RootKey), so an
// instance started with the wrong ENCRYPTION_KEY refuses to start.
//
// RotateRootKey (the `apiwallet rotate-master-key` command) rewraps every
// data key under a new root in one transaction while the wallet runs, and
// bumps the version. Afterwards the old root opens nothing. Instances still
// running with it keep serving metadata but fail on every secret with
// ErrRootKeyMismatch naming the key, and cannot create data keys under the
// retired root, until the operator restarts them with ENCRYPTION_KEY set to
// the new key.
//
// # Handling rules
//
// Plaintext secrets and DEKs live only in memory for the duration of one
// operation: callers Zero them afterwards. Errors from this package name
// ids and lengths, never values, so they are safe to log. Mask is the only
// form of a secret that may be shown.
package vault
