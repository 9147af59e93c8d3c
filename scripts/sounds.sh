#!/usr/bin/env bash
# Build the IVR prompts and the music on hold into the cache, as 8 kHz mono 16-bit PCM wav:
#   config/prompts/<lang>.yaml  (prompt-id: text) -> $HOTLINE_CACHE/sounds/<lang>/<id>.wav (espeak-ng | sox)
#   sounds/<lang>/<id>.wav      (an operator's studio recording) is used instead of the text when present
#   $HOTLINE_CACHE/moh/hotline-hold.wav                                      (a synthesized melody, sox)
#   sounds/moh/*.wav            (operator's hold music) replaces the synthesized melody when present
# Next to each prompt, <id>.source records what it was made from: `tts <sha256 of recipe, voice and
# text>` or `studio <sha256 of the recording>`; a prompt is rebuilt only when that changes (one
# YAML file holds every prompt of a language, so file times cannot tell which text changed).
# Prompts that have neither a text nor a recording any more are removed from the cache.
# Usage: scripts/sounds.sh        (asterisk.sh provision runs it and installs the results)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

prompts="$HOTLINE_REPO/config/prompts"
src="$HOTLINE_REPO/sounds"
out="$HOTLINE_CACHE/sounds"
moh_out="$HOTLINE_CACHE/moh"
# 8 kHz, mono, 16-bit signed PCM: what Asterisk plays without transcoding for a narrowband call
fmt=(-r 8000 -c 1 -b 16 -e signed-integer)
# espeak-ng words per minute; part of every tts tag with the voice, so changing it rebuilds
speed=150

command -v sox >/dev/null 2>&1 || die "sox is not installed (run scripts/install-packages.sh)"
command -v node >/dev/null 2>&1 || die "node is not installed"
[ -d "$HOTLINE_REPO/node_modules/yaml" ] || die "node modules are missing (run npm ci)"

# the espeak-ng voice of a language (file name of config/prompts/<lang>.yaml); espeak-ng 1.51:
# zh uses cmn-latn-pinyin because its `cmn` voice speaks the pinyin of many characters as English
voice_for() {
  case "$1" in
    zh) echo cmn-latn-pinyin ;;
    en | ru | ja | ko | de | fr) echo "$1" ;;
    *) return 1 ;;
  esac
}

# zh_ssml VOICE: a Mandarin text on stdin -> SSML for espeak-ng -m: runs of Latin text ("For English,
# press 9") in the English voice, numbers of 3 digits or more (12345, 4009513513) digit by digit
# with 1 as 幺, as service numbers are read out in Mandarin
zh_ssml() {
  perl -CSD -Mutf8 -e '
    my $main = shift;
    local $/;
    my $t = <STDIN>;
    my $out = "";
    for my $part (split /([A-Za-z](?:[A-Za-z0-9 ,.\x27!?-]*[A-Za-z0-9.!?])?)/, $t) {
      next if $part eq "";
      my $voice = $main;
      if ($part =~ /^[A-Za-z]/) { $voice = "en" }
      else { $part =~ s{(\d{3,})}{join " ", map { $_ eq "1" ? "幺" : $_ } split //, $1}ge }
      $part =~ s/&/&amp;/g; $part =~ s/</&lt;/g; $part =~ s/>/&gt;/g;
      $out .= "<voice name=\"$voice\">$part</voice>";
    }
    print "<speak>$out</speak>\n";
  ' "$1"
}

# has_kanji: the text on stdin contains kanji (CJK ideographs), which the espeak-ng ja voice cannot read
has_kanji() { perl -CSD -ne 'BEGIN { $f = 1 } $f = 0 if /\p{Unified_Ideograph}/; END { exit $f }'; }

sha256() { local h; h="$(sha256sum)"; printf '%s\n' "${h%% *}"; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# every text: lang<TAB>id<TAB>text (nothing is built when a file is wrong)
if [ -d "$prompts" ]; then
  # run from the checkout so that problems read config/prompts/<lang>.yaml:<line>
  (cd "$HOTLINE_REPO" && node scripts/prompts-list.mjs config/prompts) >"$work/prompts.tsv" \
    || die "config/prompts: fix the problems above (nothing was built)"
else
  warn "config/prompts is missing: only studio recordings are used"
  : >"$work/prompts.tsv"
fi
declare -A text=()
langs=()
while IFS=$'\t' read -r lang id txt <&3; do
  text["$lang/$id"]="$txt"
done 3<"$work/prompts.tsv"
for f in "$prompts"/*.yaml; do
  [ -f "$f" ] && langs+=("$(basename "$f" .yaml)")
done
for dir in "$src"/*/; do
  [ -d "$dir" ] || continue
  lang="$(basename "$dir")"
  [ "$lang" = moh ] && continue
  langs+=("$lang")
  for f in "$dir"*.txt; do
    [ -f "$f" ] && warn "sounds/$lang/$(basename "$f") is no longer read: put its text in config/prompts/$lang.yaml"
  done
done

mkdir -p "$out" "$moh_out"
built=0
kept=0
skipped=0
[ "${#langs[@]}" -gt 0 ] && mapfile -t langs < <(printf '%s\n' "${langs[@]}" | sort -u)

for lang in "${langs[@]}"; do
  # every prompt id that has a text or a studio recording
  ids=()
  for key in "${!text[@]}"; do
    [ "${key%%/*}" = "$lang" ] && ids+=("${key#*/}")
  done
  for f in "$src/$lang"/*.wav; do
    [ -f "$f" ] || continue
    ids+=("$(basename "$f" .wav)")
    [ -n "${text["$lang/$(basename "$f" .wav)"]+set}" ] \
      || warn "sounds/$lang/$(basename "$f") has no text in config/prompts/$lang.yaml (used as is)"
  done
  [ "${#ids[@]}" -gt 0 ] || continue
  mapfile -t ids < <(printf '%s\n' "${ids[@]}" | sort -u)
  mkdir -p "$out/$lang"

  voice="" recipe="" voice_checked=""
  for id in "${ids[@]}"; do
    studio="$src/$lang/$id.wav" wav="$out/$lang/$id.wav" tag="$out/$lang/$id.source"
    if [ -f "$studio" ]; then
      kind=studio want="studio $(sha256 <"$studio")"
    else
      kind=tts txt="${text["$lang/$id"]}"
      if [ -z "$voice_checked" ]; then
        voice_checked=1
        if ! command -v espeak-ng >/dev/null 2>&1; then
          die "espeak-ng is not installed (run scripts/install-packages.sh)"
        elif ! voice="$(voice_for "$lang")" || ! espeak-ng -v "$voice" -q x >/dev/null 2>&1; then
          warn "config/prompts/$lang.yaml: no espeak-ng voice for '$lang' on this machine, its texts are not spoken (add studio recordings sounds/$lang/<id>.wav)"
          voice=""
        fi
        # what makes the sound besides the text: a change here rebuilds the language
        recipe="espeak-ng -v $voice -s $speed | sox norm -3"
        [ "$lang" = zh ] && recipe="$recipe; zh_ssml v1 (Latin in en, digits one by one)"
      fi
      if [ -z "$voice" ]; then
        rm -f "$wav" "$tag"
        skipped=$((skipped + 1))
        continue
      fi
      if [ "$lang" = ja ] && printf '%s\n' "$txt" | has_kanji; then
        warn "config/prompts/ja.yaml: prompt '$id' has kanji, which espeak-ng reads as \"Chinese letter\": write it in kana"
      fi
      want="tts $(printf '%s\n%s\n' "$recipe" "$txt" | sha256)"
    fi
    have=""
    if [ -f "$tag" ]; then read -r have <"$tag" || true; fi
    if [ -f "$wav" ] && [ "$have" = "$want" ]; then
      kept=$((kept + 1))
      continue
    fi
    tmp="$wav.tmp.wav"
    if [ "$kind" = studio ]; then
      sox "$studio" "${fmt[@]}" "$tmp" || die "cannot convert sounds/$lang/$id.wav"
    else
      if [ "$lang" = zh ]; then
        printf '%s' "$txt" | zh_ssml "$voice" >"$work/input"
        markup=(-m)
      else
        printf '%s\n' "$txt" >"$work/input"
        markup=()
      fi
      # -f reads the UTF-8 text as is; sox resamples espeak's 22 kHz output to 8 kHz
      espeak-ng -v "$voice" -s "$speed" "${markup[@]}" -f "$work/input" --stdout \
        | sox -t wav - "${fmt[@]}" "$tmp" norm -3 \
        || die "cannot synthesize prompt '$id' of config/prompts/$lang.yaml"
    fi
    [ "$(soxi -s "$tmp")" -gt 0 ] || die "prompt $lang/$id came out empty"
    mv -f "$tmp" "$wav"
    printf '%s\n' "$want" >"$tag"
    built=$((built + 1))
  done
done

# drop cached prompts whose source is gone, so the installed set mirrors the repository
for wav in "$out"/*/*.wav; do
  [ -f "$wav" ] || continue
  id="${wav##*/}" id="${id%.wav}" lang="${wav%/*}" lang="${lang##*/}"
  if [ -z "${text["$lang/$id"]+set}" ] && [ ! -f "$src/$lang/$id.wav" ]; then
    rm -f "$wav" "${wav%.wav}.source"
    log "removed stale prompt $lang/$id"
  fi
done
for tag in "$out"/*/*.source; do
  [ -f "$tag" ] && [ ! -f "${tag%.source}.wav" ] && rm -f "$tag"
done
for d in "$out"/*/; do
  [ -d "$d" ] || continue
  lang="$(basename "$d")"
  [ -f "$prompts/$lang.yaml" ] || [ -d "$src/$lang" ] || rm -rf "$d"
done
[ "$skipped" -eq 0 ] || warn "$skipped prompt(s) not built: no espeak-ng voice for their language"

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
