#!/bin/sh
# Refreshes the dashboard's vendored front-end libraries from npm, pinned by version and
# by the tarballs' sha256. Not needed to run the dashboard: the files are committed in
# moorage/dashboard/static/vendor/ (no CDN, no build step at run time).
set -eu
dest=$(cd "$(dirname "$0")/../moorage/dashboard/static/vendor" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent htmx.org@2.0.4 @xterm/xterm@5.5.0 @xterm/addon-fit@0.10.0 >/dev/null
sha256sum -c <<SUMS
a34988d1b9f005a458d593aa8d7486537cb878b8ac3b82703db1268983123ecc  htmx.org-2.0.4.tgz
bd954fa721872170188cc5d7e83e88db3c83c9a18a4e8d24c2783d26491f59d2  xterm-xterm-5.5.0.tgz
917ac44972453d5eed52edc1e50260c76398ce48cf2290c2e60671102bba0b33  xterm-addon-fit-0.10.0.tgz
SUMS
for f in *.tgz; do mkdir "${f%.tgz}" && tar -C "${f%.tgz}" -xzf "$f"; done
cp htmx.org-2.0.4/package/dist/htmx.min.js "$dest/"
cp htmx.org-2.0.4/package/LICENSE "$dest/LICENSE.htmx"
cp xterm-xterm-5.5.0/package/lib/xterm.js xterm-xterm-5.5.0/package/css/xterm.css "$dest/"
cp xterm-xterm-5.5.0/package/LICENSE "$dest/LICENSE.xterm"
cp xterm-addon-fit-0.10.0/package/lib/addon-fit.js "$dest/"
# The source maps are not shipped; their comments would make the browser ask for them.
sed -i '/sourceMappingURL/d' "$dest/xterm.js" "$dest/addon-fit.js"
