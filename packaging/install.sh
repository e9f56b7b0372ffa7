#!/usr/bin/env bash
# Install the built bundle for the current user (no root needed):
#   ~/.local/share/gemma-desktop/app/         the bundle (dist/GemmaDesktop)
#   ~/.local/bin/gemma-desktop                a link to its executable (CLI use)
#   ~/.local/share/applications/gemma-desktop.desktop
#   ~/.local/share/icons/hicolor/<n>x<n>/apps/gemma-desktop.png and scalable/apps/gemma-desktop.svg
#
#   bash packaging/install.sh [BUNDLE_DIR]       # default: dist/GemmaDesktop
#   bash packaging/install.sh --uninstall
# XDG_DATA_HOME and PREFIX_BIN move the targets (the tests install into a temp folder this way).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${XDG_DATA_HOME:-$HOME/.local/share}"
BIN="${PREFIX_BIN:-$HOME/.local/bin}"
APPDIR="$DATA/gemma-desktop/app"
DESKTOP="$DATA/applications/gemma-desktop.desktop"
ICONS="$DATA/icons/hicolor"

refresh() {
  # Menus notice new entries on their own; these only speed it up, and may be absent.
  command -v update-desktop-database >/dev/null && update-desktop-database -q "$DATA/applications" || true
  command -v gtk-update-icon-cache >/dev/null && gtk-update-icon-cache -q -t "$ICONS" 2>/dev/null || true
}

if [ "${1:-}" = "--uninstall" ]; then
  rm -rf "$DATA/gemma-desktop/app" "$DESKTOP" "$BIN/gemma-desktop"
  find "$ICONS" -name gemma-desktop.png -o -name gemma-desktop.svg 2>/dev/null | xargs -r rm -f
  refresh
  echo "Gemma Desktop removed (your chats and models stay in ~/.local/share/gemma-desktop)."
  exit 0
fi

SRC="${1:-dist/GemmaDesktop}"
[ -x "$SRC/GemmaDesktop" ] || { echo "no bundle at $SRC: run 'bash packaging/build.sh' first" >&2; exit 1; }

# Copy into a fresh folder, then swap it in, so a running copy is never half-replaced.
mkdir -p "$DATA/gemma-desktop"
rm -rf "$APPDIR.new"
cp -a "$SRC" "$APPDIR.new"
rm -rf "$APPDIR.old"
[ -d "$APPDIR" ] && mv "$APPDIR" "$APPDIR.old"
mv "$APPDIR.new" "$APPDIR"
rm -rf "$APPDIR.old"

mkdir -p "$BIN"
ln -sfn "$APPDIR/GemmaDesktop" "$BIN/gemma-desktop"

for png in "$APPDIR"/_internal/icons/gemma-desktop-*.png; do
  [ -e "$png" ] || continue
  n=$(basename "$png" .png); n=${n##*-}
  mkdir -p "$ICONS/${n}x${n}/apps"
  cp "$png" "$ICONS/${n}x${n}/apps/gemma-desktop.png"
done
mkdir -p "$ICONS/scalable/apps"
cp "$APPDIR/_internal/resources/icons/app.svg" "$ICONS/scalable/apps/gemma-desktop.svg"

mkdir -p "$(dirname "$DESKTOP")"
# Absolute Exec/TryExec: ~/.local/bin is not on every desktop session's PATH.
sed -e "s|^Exec=.*|Exec=\"$APPDIR/GemmaDesktop\"|" -e "s|^TryExec=.*|TryExec=$APPDIR/GemmaDesktop|" \
  "$APPDIR/_internal/gemma-desktop.desktop" > "$DESKTOP"
chmod 644 "$DESKTOP"
refresh
echo "Installed Gemma Desktop in $APPDIR"
echo "Menu entry: $DESKTOP"
