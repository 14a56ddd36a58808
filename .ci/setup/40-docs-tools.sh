# The tools docs/API.md's examples use, which TestAPIDocExamples
# (cmd/apiwallet) runs in bash: curl, jq to capture ids from answers, and
# openssl to sign the Stripe webhook example.
docs_need=()
for tool in curl jq openssl; do
  command -v "$tool" >/dev/null || docs_need+=("$tool")
done
if [ ${#docs_need[@]} -gt 0 ]; then
  echo "ci: installing ${docs_need[*]} for the API.md examples"
  apt_install "${docs_need[@]}"
fi
unset docs_need tool
