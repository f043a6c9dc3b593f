#!/usr/bin/env bash
# Installs the Debian packages that hold real offline data: Fashion-MNIST, extra font faces for
# the glyph source, and WordNet (the hand-picked baseline's relation for sources named by WordNet
# ids). Idempotent; skips quietly when apt is not available (the glyph source then uses
# the fonts matplotlib ships, Fashion-MNIST must be pointed to with the `root` option of the
# fashion_mnist dataset, and WordNet with $TRANSFER_INFLUENCE_WORDNET).
set -u
packages=(dataset-fashion-mnist wordnet-base
  fonts-dejavu-core fonts-dejavu-extra fonts-liberation2 fonts-freefont-ttf fonts-croscore
  fonts-crosextra-carlito fonts-crosextra-caladea fonts-lato fonts-open-sans fonts-roboto-unhinted
  fonts-texgyre fonts-cantarell fonts-cabin fonts-quicksand fonts-ebgaramond fonts-linuxlibertine
  fonts-karla fonts-comic-neue fonts-humor-sans fonts-dkg-handwriting fonts-breip fonts-bwht
  fonts-kristi fonts-dancingscript fonts-rufscript fonts-kaushanscript)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "note: apt-get not found; not installing ${missing[*]}" >&2; exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo -n"; else
    echo "note: not root; install with: sudo apt-get install ${missing[*]}" >&2; exit 0; fi
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null 2>&1 || true
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
  || echo "note: apt-get could not install ${missing[*]}" >&2
exit 0
