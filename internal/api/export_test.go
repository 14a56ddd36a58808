package api

// WalletPath reports whether a path is one of the wallet's own, for the
// tests that tell proxied calls from the rest.
var WalletPath = walletPath
