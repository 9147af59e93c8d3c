#!/usr/bin/env bash
# Build the IVR prompts and the music on hold into the cache, as 8 kHz mono 16-bit PCM wav:
#   sounds/<lang>/<name>.txt  -> $HOTLINE_CACHE/sounds/<lang>/<name>.wav   (espeak-ng | sox)
#   sounds/<lang>/<name>.wav  (an operator's studio recording) is used instead of the text when present
#   $HOTLINE_CACHE/moh/hotline-hold.wav                                      (a synthesized melody, sox)
#   sounds/moh/*.wav          (operator's hold music) replaces the synthesized melody when present
# A prompt is rebuilt only when its source is newer than the cached wav (or the wav is missing).
# Usage: scripts/sounds.sh        (asterisk.sh provision runs it and installs the results)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

src="$HOTLINE_REPO/sounds"
out="$HOTLINE_CACHE/sounds"
moh_out="$HOTLINE_CACHE/moh"
# 8 kHz, mono, 16-bit signed PCM: what Asterisk plays without transcoding for a narrowband call
fmt=(-r 8000 -c 1 -b 16 -e signed-integer)

command -v sox >/dev/null 2>&1 || die "sox is not installed (run scripts/install-packages.sh)"

voice_for() {
  case "$1" in
    zh) echo cmn ;;
    en | ru | ja | ko | de | fr | cmn) echo "$1" ;;
    *) return 1 ;;
  esac
}

mkdir -p "$out" "$moh_out"
built=0
kept=0

for dir in "$src"/*/; do
  [ -d "$dir" ] || continue
  lang="$(basename "$dir")"
  [ "$lang" = moh ] && continue
  if ! voice=$(voice_for "$lang"); then
    warn "sounds/$lang: no espeak-ng voice for this language, only studio .wav files are used"
    voice=""
  fi
  mkdir -p "$out/$lang"
  # every prompt name that has a text or a studio recording
  names=()
  for f in "$dir"*.txt "$dir"*.wav; do
    [ -f "$f" ] || continue
    n="$(basename "$f")"
    names+=("${n%.*}")
  done
  [ "${#names[@]}" -gt 0 ] || continue
  mapfile -t names < <(printf '%s\n' "${names[@]}" | sort -u)
  for name in "${names[@]}"; do
    txt="$dir$name.txt" studio="$dir$name.wav" wav="$out/$lang/$name.wav" tag="$out/$lang/$name.source"
    if [ -f "$studio" ]; then kind=studio source="$studio"; else kind=tts source="$txt"; fi
    if [ -f "$wav" ] && [ ! "$source" -nt "$wav" ] && [ "$(cat "$tag" 2>/dev/null)" = "$kind" ]; then
      kept=$((kept + 1))
      continue
    fi
    tmp="$wav.tmp.wav"
    if [ "$kind" = studio ]; then
      sox "$studio" "${fmt[@]}" "$tmp" || die "cannot convert sounds/$lang/$name.wav"
    else
      [ -n "$voice" ] || die "sounds/$lang/$name.txt: no espeak-ng voice for '$lang' (add a studio $name.wav)"
      command -v espeak-ng >/dev/null 2>&1 || die "espeak-ng is not installed (run scripts/install-packages.sh)"
      # -f reads the UTF-8 text file as is; sox resamples espeak's 22 kHz output to 8 kHz
      espeak-ng -v "$voice" -s 150 -f "$txt" --stdout | sox -t wav - "${fmt[@]}" "$tmp" norm -3 \
        || die "cannot synthesize sounds/$lang/$name.txt"
    fi
    mv -f "$tmp" "$wav"
    echo "$kind" >"$tag"
    built=$((built + 1))
  done
done

# drop cached prompts whose source is gone, so the installed set mirrors the repository
for wav in "$out"/*/*.wav; do
  [ -f "$wav" ] || continue
  lang="$(basename "$(dirname "$wav")")" name="$(basename "$wav" .wav)"
  if [ ! -f "$src/$lang/$name.txt" ] && [ ! -f "$src/$lang/$name.wav" ]; then
    rm -f "$wav" "${wav%.wav}.source"
    log "removed stale prompt $lang/$name"
  fi
done

for d in "$out"/*/; do
  [ -d "$d" ] && [ ! -d "$src/$(basename "$d")" ] && rm -rf "$d"
done

# music on hold: the operator's files when there are any, else a gentle pentatonic melody (~24 s)
moh_studio=()
for f in "$src"/moh/*.wav; do [ -f "$f" ] && moh_studio+=("$f"); done
if [ "${#moh_studio[@]}" -gt 0 ]; then
  rm -f "$moh_out/hotline-hold.wav"
  for f in "${moh_studio[@]}"; do
    dest="$moh_out/$(basename "$f")"
    if [ ! -f "$dest" ] || [ "$f" -nt "$dest" ]; then
      sox "$f" "${fmt[@]}" "$dest.tmp.wav" && mv -f "$dest.tmp.wav" "$dest"
      built=$((built + 1))
    fi
  done
  for f in "$moh_out"/*.wav; do
    [ -f "$f" ] && [ ! -f "$src/moh/$(basename "$f")" ] && rm -f "$f"
  done
else
  for f in "$moh_out"/*.wav; do
    [ -f "$f" ] && [ "$(basename "$f")" != hotline-hold.wav ] && rm -f "$f"
  done
  moh="$moh_out/hotline-hold.wav"
  # rebuilt when missing or when this script (the recipe) changes
  if [ ! -f "$moh" ] || [ "${BASH_SOURCE[0]}" -nt "$moh" ]; then
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    # semitones from A440 on a C major pentatonic scale, 32 notes of 0.75 s
    melody=(-9 -5 -2 0 -2 -5 -7 -9  -5 -2 0 3 0 -2 -5 -2  0 3 5 3 0 -2 0 -5  -2 -5 -7 -5 -9 -7 -9 -9)
    parts=()
    i=0
    for st in "${melody[@]}"; do
      i=$((i + 1))
      sox -n "${fmt[@]}" "$work/n$i.wav" synth 0.75 pluck "%$st" fade q 0.005 0.75 0.35 vol 0.6
      parts+=("$work/n$i.wav")
    done
    sox "${parts[@]}" "$work/melody.wav"
    # a soft drone a fifth apart under the melody
    sox -n "${fmt[@]}" "$work/pad1.wav" synth 24 sine %-21 vol 0.12
    sox -n "${fmt[@]}" "$work/pad2.wav" synth 24 sine %-14 vol 0.08
    sox -m "$work/melody.wav" "$work/pad1.wav" "$work/pad2.wav" "${fmt[@]}" "$work/hold.wav" \
      reverb 40 norm -6 fade t 0.5 24 1.5
    mv -f "$work/hold.wav" "$moh"
    built=$((built + 1))
  fi
fi

log "sounds: $built built, $kept up to date ($out)"
