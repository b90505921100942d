# shellcheck shell=bash
# Shared helpers for scripts/make-sample and scripts/bench-scan.
# Source it; it defines functions only and changes no shell options.

# The wallpaper packages the sample and benchmark photos come from.
DOPPEL_BG=/usr/share/backgrounds
DOPPEL_MATE_BG=$DOPPEL_BG/mate

die() {
    printf '%s: error: %s\n' "${0##*/}" "$*" >&2
    exit 1
}

# require_cmd COMMAND DEBIAN-PACKAGE
require_cmd() {
    command -v "$1" >/dev/null 2>&1 ||
        die "'$1' not found: install the Debian package $2 (apt-get install $2)"
}

# require_file PATH DEBIAN-PACKAGE
require_file() {
    [[ -f $1 ]] ||
        die "'$1' not found: install the Debian package $2 (apt-get install $2)"
}

# Check that both wallpaper packages are installed (a few files from each).
require_wallpapers() {
    local f
    for f in nature/Storm.jpg nature/Aqua.jpg abstract/Elephants_5640x3172.jpg \
             desktop/Ubuntu-Mate-Cold-no-logo.png; do
        require_file "$DOPPEL_MATE_BG/$f" mate-backgrounds
    done
    for f in rhythm.jpg string.jpg firstgeneration.jpg city.png goldfish.png; do
        require_file "$DOPPEL_BG/$f" ukui-wallpapers
    done
}

# quiet COMMAND...: run COMMAND with its stdout/stderr captured; show them
# and fail only if it fails. Keeps vips/exiv2 chatter off the terminal.
quiet() {
    local out rc=0
    out=$("$@" 2>&1) || rc=$?
    if ((rc != 0)); then
        printf '%s\n' "$out" >&2
        die "command failed (exit $rc): $*"
    fi
}

# vips_dims FILE -> "WIDTH HEIGHT"
vips_dims() {
    printf '%s %s\n' "$(vipsheader -f width "$1")" "$(vipsheader -f height "$1")"
}

# abs_path PATH (PATH need not exist yet)
abs_path() {
    case $1 in
        /*) printf '%s\n' "$1" ;;
        *) printf '%s\n' "$PWD/$1" ;;
    esac
}
