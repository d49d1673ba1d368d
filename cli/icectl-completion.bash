# bash completion for icectl, installed as share/bash-completion/completions/icectl.
#
# Verbs and options are icectl's (cli/icectl.cc; tests/cli/test_completion.sh checks them against
# `icectl --help`). Device, hardware and key names are asked of the daemon through the control
# socket — `icectl --json ls`, `hw ls`, `key ls`, with the --socket of the command line or
# $ICE_SOCKET — and nothing is offered when it does not answer within a second. Needs no
# bash-completion helpers.

# _icectl_names VERB…: the names of what `icectl --json VERB…` lists, one a line.
_icectl_names() {
  local out
  out=$("${_icectl_cmd[@]}" --timeout 1 --json "$@" 2>/dev/null </dev/null) || return 0
  # icectl prints JSON indented by 2: the fields of each listed object are 6 spaces in, deeper
  # objects (a hardware device's slots) further. Names never hold a quote or a backslash.
  sed -n 's/^      "name": "\([^"]*\)",\{0,1\}$/\1/p' <<<"$out"
}

_icectl() {
  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
  local -a _icectl_cmd=("${COMP_WORDS[0]}")
  local verb="" sub="" npos=0 i w
  COMPREPLY=()

  # What is typed before the cursor: global options, the verb (and sub-verb), positionals.
  for ((i = 1; i < COMP_CWORD; i++)); do
    w=${COMP_WORDS[i]}
    case $w in
      --socket)
        # "--socket=P" reaches here as "--socket" "=" "P" ('=' breaks words).
        [[ ${COMP_WORDS[i + 1]} == = ]] && ((i++))
        ((i++))
        [[ $i -lt $COMP_CWORD ]] && _icectl_cmd+=(--socket "${COMP_WORDS[i]/#\~/$HOME}")
        continue ;;
      --timeout | --table | --table-file | --mode | --data-unit-size | --dun-bytes | --key-file | \
        --fail-programs | --program-latency-ms | --fail-evictions)
        [[ ${COMP_WORDS[i + 1]} == = ]] && ((i++))
        ((i++))
        continue ;;
      -*) continue ;;
    esac
    if [[ -z $verb ]]; then
      verb=$w
    elif [[ -z $sub && ($verb == key || $verb == hw || $verb == export) ]]; then
      sub=$w
    else
      ((npos++))
    fi
  done

  # '=' and '@' break words: "--socket=P" is "--socket" "=" "P", "lin0@k" is "lin0" "@" "k".
  if [[ $cur == = ]]; then
    cur=""
  elif [[ $prev == = ]]; then
    prev=${COMP_WORDS[COMP_CWORD - 2]}
  fi
  case $prev in
    --socket | --table-file | --key-file)
      compopt -o filenames 2>/dev/null
      mapfile -t COMPREPLY < <(compgen -f -- "$cur")
      return 0 ;;
    --mode)
      mapfile -t COMPREPLY < <(compgen -W "aes-256-xts aes-128-cbc-essiv" -- "$cur")
      return 0 ;;
    --timeout | --table | --data-unit-size | --dun-bytes | --fail-programs | \
      --program-latency-ms | --fail-evictions)
      return 0 ;;
  esac

  local words="" options="--socket --json --timeout --help"
  case "$verb $sub" in
    " ") options+=" --version"
      words="ls create load clear suspend resume remove table status info message key hw metrics
             export version" ;;
    "key ") words="add rm ls" ;;
    "hw ") words="ls info reset fault" ;;
    "export ") words="check" ;;
    "create "* | "load "*) options+=" --table --table-file" ;;
    "table "*) options+=" --inactive" ;;
    "key add") options+=" --mode --data-unit-size --dun-bytes --key-file" ;;
    "hw fault") options+=" --fail-programs --program-latency-ms --fail-evictions" ;;
  esac
  if [[ $cur == -* ]]; then
    mapfile -t COMPREPLY < <(compgen -W "$options" -- "$cur")
    return 0
  fi
  if [[ -n $words ]]; then
    mapfile -t COMPREPLY < <(compgen -W "$words" -- "$cur")
    return 0
  fi
  if [[ "$verb $sub" == "export check" ]]; then
    # NAME@KEY: after the device, a key. Bash replaces only what follows the '@' unless '@' was
    # taken out of COMP_WORDBREAKS, in which case the whole word is replaced.
    if [[ $cur == @ || $prev == @ ]]; then
      [[ $cur == @ ]] && cur=""
      mapfile -t COMPREPLY < <(compgen -W "$(_icectl_names key ls)" -- "$cur")
      return 0
    elif [[ $cur == *@* ]]; then
      mapfile -t COMPREPLY < <(compgen -P "${cur%%@*}@" -W "$(_icectl_names key ls)" -- "${cur#*@}")
      return 0
    fi
  fi
  [[ $npos -eq 0 ]] || return 0
  case "$verb $sub" in
    "load "* | "clear "* | "suspend "* | "resume "* | "remove "* | "table "* | "status "* | \
      "message "*)
      words=$(_icectl_names ls) ;;
    "info "*) words="$(_icectl_names ls) $(_icectl_names hw ls)" ;;
    "key rm") words=$(_icectl_names key ls) ;;
    "hw info" | "hw reset" | "hw fault") words=$(_icectl_names hw ls) ;;
    "export check") words="$(_icectl_names ls) $(_icectl_names hw ls)" ;;
  esac
  mapfile -t COMPREPLY < <(compgen -W "$words" -- "$cur")
  return 0
}

complete -F _icectl icectl
