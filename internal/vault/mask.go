package vault

const (
	ellipsis = "…"

	// A prefix such as "sk_live_" or "sk-proj-" tells a user which kind of
	// key they are looking at; anything longer starts to be key material.
	maxMaskPrefix = 8
	// Separators must appear this early to count as a type prefix.
	maskPrefixWindow = 12
)

// Mask returns the display form of a secret for lists, responses and
// echoes: enough to recognise a key (its type prefix and last 4 characters,
// e.g. "sk_live_…4f2a"), never enough to narrow it down. The rules, in
// characters (runes):
//
//   - the prefix runs up to and including the last '_' or '-' among the
//     first 12 characters, but only while it stays within 8 characters
//     (a longer one falls back to an earlier separator, never to a cut in
//     the middle of key material);
//   - the prefix is shown only if at least half of the secret stays hidden,
//     so a short key with a long prefix shows its last 4 only;
//   - below 12 characters only "…" and the last 2 are shown, and below 6
//     only "…", so no more than a third is ever revealed.
func Mask(secret string) string {
	r := []rune(secret)
	n := len(r)
	switch {
	case n == 0:
		return ""
	case n < 6:
		return ellipsis
	case n < maskPrefixWindow:
		return ellipsis + string(r[n-2:])
	}
	masked := ellipsis + string(r[n-4:])
	if p := maskPrefixLen(r); p > 0 && p+4 <= n/2 {
		return string(r[:p]) + masked
	}
	return masked
}

// maskPrefixLen is the length of the type prefix of r, or 0 if it has none.
func maskPrefixLen(r []rune) int {
	for i := min(len(r), maskPrefixWindow, maxMaskPrefix) - 1; i >= 0; i-- {
		if r[i] == '_' || r[i] == '-' {
			return i + 1
		}
	}
	return 0
}
