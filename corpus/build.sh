#!/usr/bin/env bash
# corpus/build.sh — rebuild the narfs NAR corpus from pinned, real registry archives.
#
# Owns: fetching each archive by name + pinned version, checking it against the
# sha256 pinned below, unpacking it into a tree whose contents, exec bits and
# symlinks come from the archive, and serialising that tree with
# `nix-store --dump` into <package>-<version>.nar.
#
# Usage:
#   bash corpus/build.sh                   # small: bundled corpus into corpus/
#   bash corpus/build.sh small [OUTDIR]    # same, into OUTDIR (default: corpus/)
#   bash corpus/build.sh large OUTDIR [N]  # large series (16 NARs, 1.3 GB) into
#                                          # OUTDIR, checked against
#                                          # corpus/large.MANIFEST.tsv; N builds
#                                          # only the first N entries
#   bash corpus/build.sh verify            # rebuild small into a temp dir and
#                                          # compare with corpus/SHA256SUMS
#
# Environment:
#   NARFS_CORPUS_CACHE   archive cache dir (default ~/.cache/narfs-corpus)
#   NARFS_CORPUS_VERIFY  1 (default): restore+re-dump every NAR and compare bytes
#
# Needs: bash, curl, python3, sha256sum, nix-store + nix-hash (Debian: nix-bin),
# and for the Debian entries apt-get + dpkg-deb with bookworm sources.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${NARFS_CORPUS_CACHE:-${HOME:-/tmp}/.cache/narfs-corpus}"
VERIFY="${NARFS_CORPUS_VERIFY:-1}"

# Pinned inputs. Columns (tab-separated):
#   package  version  kind  registry  archive-file-name  archive-sha256  locator
# registry pypi:   locator is the files.pythonhosted.org URL (content-addressed).
# registry debian: locator is the apt spec `name:arch=version` for apt-get download.
SMALL_INPUTS="$(cat <<'EOF'
attrs	23.2.0	pure-python	pypi	attrs-23.2.0-py3-none-any.whl	99b87a485a5820b23b879f04c2305b44b951b502fd64be915879d77a7e8fc6f1	https://files.pythonhosted.org/packages/e0/44/827b2a91a5816512fcaf3cc4ebc465ccd5d598c45cefa6703fcf4a79018f/attrs-23.2.0-py3-none-any.whl
attrs	24.1.0	pure-python	pypi	attrs-24.1.0-py3-none-any.whl	377b47448cb61fea38533f671fba0d0f8a96fd58facd4dc518e3dac9dbea0905	https://files.pythonhosted.org/packages/9b/2b/913eda7a67f7bea7496c1a8e1666f48aa9f15520da79368e4ec1109e2690/attrs-24.1.0-py3-none-any.whl
attrs	24.2.0	pure-python	pypi	attrs-24.2.0-py3-none-any.whl	81921eb96de3191c8258c199618104dd27ac608d9366f5e35d011eae1867ede2	https://files.pythonhosted.org/packages/6a/21/5b6702a7f963e95456c0de2d495f67bf5fd62840ac655dc451586d23d39a/attrs-24.2.0-py3-none-any.whl
attrs	24.3.0	pure-python	pypi	attrs-24.3.0-py3-none-any.whl	ac96cd038792094f438ad1f6ff80837353805ac950cd2aa0e0625ef19850c308	https://files.pythonhosted.org/packages/89/aa/ab0f7891a01eeb2d2e338ae8fecbe57fcebea1a24dbb64d45801bfab481d/attrs-24.3.0-py3-none-any.whl
charset-normalizer	3.3.0	compiled	pypi	charset_normalizer-3.3.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl	f0d1e3732768fecb052d90d62b220af62ead5748ac51ef61e7b32c266cac9293	https://files.pythonhosted.org/packages/ff/b6/9222090f396f33cd58aa5b08b9bbf8871416b746a0c7b412a41a973674a5/charset_normalizer-3.3.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
charset-normalizer	3.3.1	compiled	pypi	charset_normalizer-3.3.1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl	ae55d592b02c4349525b6ed8f74c692509e5adffa842e582c0f861751701a673	https://files.pythonhosted.org/packages/ae/e5/8c290f1dd50aae55d1ec20420a6df3c051d6f5ad78ee5b88b1a7ef26634b/charset_normalizer-3.3.1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
charset-normalizer	3.3.2	compiled	pypi	charset_normalizer-3.3.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl	753f10e867343b4511128c6ed8c82f7bec3bd026875576dfd88483c5c73b2fd8	https://files.pythonhosted.org/packages/40/26/f35951c45070edc957ba40a5b1db3cf60a9dbb1b350c2d5bef03e01e61de/charset_normalizer-3.3.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
charset-normalizer	3.4.0	compiled	pypi	charset_normalizer-3.4.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl	3710a9751938947e6327ea9f3ea6332a09bf0ba0c09cae9cb1f250bd1f1549bc	https://files.pythonhosted.org/packages/eb/5b/6f10bad0f6461fa272bfbbdf5d0023b5fb9bc6217c92bf068fa5a99820f5/charset_normalizer-3.4.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
tzdata	2023.3	data	pypi	tzdata-2023.3-py2.py3-none-any.whl	7e65763eef3120314099b6939b5546db7adce1e7d6f2e179e3df563c70511eda	https://files.pythonhosted.org/packages/d5/fb/a79efcab32b8a1f1ddca7f35109a50e4a80d42ac1c9187ab46522b2407d7/tzdata-2023.3-py2.py3-none-any.whl
tzdata	2023.4	data	pypi	tzdata-2023.4-py2.py3-none-any.whl	aa3ace4329eeacda5b7beb7ea08ece826c28d761cda36e747cfbf97996d39bf3	https://files.pythonhosted.org/packages/a3/fb/52b62131e21b24ee297e4e95ed41eba29647dad0e0051a92bb66b43c70ff/tzdata-2023.4-py2.py3-none-any.whl
tzdata	2024.1	data	pypi	tzdata-2024.1-py2.py3-none-any.whl	9068bc196136463f5245e51efda838afa15aaeca9903f49050dfa2679db4d252	https://files.pythonhosted.org/packages/65/58/f9c9e6be752e9fcb8b6a0ee9fb87e6e7a1f6bcab2cdc73f02bb7ba91ada0/tzdata-2024.1-py2.py3-none-any.whl
tzdata	2024.2	data	pypi	tzdata-2024.2-py2.py3-none-any.whl	a48093786cdcde33cad18c2555e8532f34422074448fbc874186f0abd79565cd	https://files.pythonhosted.org/packages/a6/ab/7e5f53c3b9d14972843a647d8d7a853969a58aecc7559cb3267302c94774/tzdata-2024.2-py2.py3-none-any.whl
# Patch releases of pure-Python packages: most files repeat from one version to the
# next, which is what per-file blocks are for.
requests	2.32.0	pure-python-patch	pypi	requests-2.32.0-py3-none-any.whl	f2c3881dddb70d056c5bd7600a4fae312b2a300e39be6a118d30b90bd27262b5	https://files.pythonhosted.org/packages/24/e8/09e8d662a9675a4e4f5dd7a8e6127b463a091d2703ed931a64aa66d00065/requests-2.32.0-py3-none-any.whl
requests	2.32.1	pure-python-patch	pypi	requests-2.32.1-py3-none-any.whl	21ac9465cdf8c1650fe1ecde8a71669a93d4e6f147550483a2967d08396a56a5	https://files.pythonhosted.org/packages/9c/a6/b9bf71eeb6dc835311b5c47a7c90df57b08061091161639611252257768d/requests-2.32.1-py3-none-any.whl
requests	2.32.2	pure-python-patch	pypi	requests-2.32.2-py3-none-any.whl	fc06670dd0ed212426dfeb94fc1b983d917c4f9847c863f313c9dfaaffb7c23c	https://files.pythonhosted.org/packages/c3/20/748e38b466e0819491f0ce6e90ebe4184966ee304fe483e2c414b0f4ef07/requests-2.32.2-py3-none-any.whl
requests	2.32.3	pure-python-patch	pypi	requests-2.32.3-py3-none-any.whl	70761cfe03c773ceb22aa2f671b4757976145175cdfca038c02654d061d6dcc6	https://files.pythonhosted.org/packages/f9/9b/335f9764261e915ed497fcdeb11df5dfd6f7bf257d4a6a2a686d80da4d54/requests-2.32.3-py3-none-any.whl
click	8.1.5	pure-python-patch	pypi	click-8.1.5-py3-none-any.whl	e576aa487d679441d7d30abb87e1b43d24fc53bffb8758443b1a9e1cee504548	https://files.pythonhosted.org/packages/22/b3/1da4ea0efa2e5ae410a347be614162ca08bd24a84059938aa5122d1e751b/click-8.1.5-py3-none-any.whl
click	8.1.6	pure-python-patch	pypi	click-8.1.6-py3-none-any.whl	fa244bb30b3b5ee2cae3da8f55c9e5e0c0e86093306301fb418eb9dc40fbded5	https://files.pythonhosted.org/packages/1a/70/e63223f8116931d365993d4a6b7ef653a4d920b41d03de7c59499962821f/click-8.1.6-py3-none-any.whl
click	8.1.7	pure-python-patch	pypi	click-8.1.7-py3-none-any.whl	ae74fb96c20a0277a1d615f1e4d73c8414f5a98db8b799a7931d1582f3390c28	https://files.pythonhosted.org/packages/00/2e/d53fa4befbf2cfa713304affc7ca780ce4fc1fd8710527771b58311a3229/click-8.1.7-py3-none-any.whl
pydantic	2.7.1	pure-python-patch	pypi	pydantic-2.7.1-py3-none-any.whl	e029badca45266732a9a79898a15ae2e8b14840b1eabbb25844be28f0b33f3d5	https://files.pythonhosted.org/packages/ed/76/9a17032880ed27f2dbd490c77a3431cbc80f47ba81534131de3c2846e736/pydantic-2.7.1-py3-none-any.whl
pydantic	2.7.2	pure-python-patch	pypi	pydantic-2.7.2-py3-none-any.whl	834ab954175f94e6e68258537dc49402c4a5e9d0409b9f1b86b7e934a8372de7	https://files.pythonhosted.org/packages/6f/b9/ec44b1394957d5aa8d3a7c33f8304cd7670d10a43a286db56cec086346be/pydantic-2.7.2-py3-none-any.whl
pydantic	2.7.3	pure-python-patch	pypi	pydantic-2.7.3-py3-none-any.whl	ea91b002777bf643bb20dd717c028ec43216b24a6001a280f83877fd2655d0b4	https://files.pythonhosted.org/packages/e6/f5/80931903275942770f1112b524f1948f6d6ebd44725425025ca838800de2/pydantic-2.7.3-py3-none-any.whl
# Debian bookworm openssl: executables + symlinks. Debian drops superseded
# versions from its archive; see README.md.
openssl	3.0.17-1~deb12u2	deb-exec-symlinks	debian	openssl_3.0.17-1~deb12u2_amd64.deb	64c557f50e17118b1cebde87218dc8ce02cda70cf5c0d21156b214a97f2f3ae9	openssl:amd64=3.0.17-1~deb12u2
openssl	3.0.20-1~deb12u2	deb-exec-symlinks	debian	openssl_3.0.20-1~deb12u2_amd64.deb	4d218561dc838de081de97f54584c4a29e77e26c7ed9fe3440d776d8e6071bf9	openssl:amd64=3.0.20-1~deb12u2
openssl	3.0.22-1~deb12u2	deb-exec-symlinks	debian	openssl_3.0.22-1~deb12u2_amd64.deb	5cdf0b735b1c8a96ae0bf83ed328c83c2170f8320dedb035e98705b60b2d0cfe	openssl:amd64=3.0.22-1~deb12u2
EOF
)"

# Large series: consecutive releases of three big compiled wheels (cp311, x86_64).
LARGE_INPUTS="$(cat <<'EOF'
numpy	1.26.0	compiled	pypi	numpy-1.26.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl	e062aa24638bb5018b7841977c360d2f5917268d125c833a686b7cbabbec496c	https://files.pythonhosted.org/packages/c4/36/161e2f8110f8c49e59f6107bd6da4257d30aff9f06373d0471811f73dcc5/numpy-1.26.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
numpy	1.26.1	compiled	pypi	numpy-1.26.1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl	6081aed64714a18c72b168a9276095ef9155dd7888b9e74b5987808f0dd0a974	https://files.pythonhosted.org/packages/8a/08/a7e5dadc21fe193baea5f257e11b7b70cc27a89692fc9e3ed690e55cc4b6/numpy-1.26.1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
numpy	1.26.2	compiled	pypi	numpy-1.26.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl	96ca5482c3dbdd051bcd1fce8034603d6ebfc125a7bd59f55b40d8f5d246832b	https://files.pythonhosted.org/packages/b6/ab/5b893944b1602a366893559bfb227fdfb3ad7c7629b2a80d039bb5924367/numpy-1.26.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
numpy	1.26.3	compiled	pypi	numpy-1.26.3-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl	f25e2811a9c932e43943a2615e65fc487a0b6b49218899e62e426e7f0a57eeda	https://files.pythonhosted.org/packages/5a/62/007b63f916aca1d27f5fede933fda3315d931ff9b2c28b9c2cf388cd8edb/numpy-1.26.3-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
numpy	1.26.4	compiled	pypi	numpy-1.26.4-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl	666dbfb6ec68962c033a450943ded891bed2d54e6755e35e5835d63f4f6931d5	https://files.pythonhosted.org/packages/3a/d0/edc009c27b406c4f9cbc79274d6e46d634d139075492ad055e3d68445925/numpy-1.26.4-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
scipy	1.11.1	compiled	pypi	scipy-1.11.1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl	b4bb943010203465ac81efa392e4645265077b4d9e99b66cf3ed33ae12254173	https://files.pythonhosted.org/packages/b8/46/1d255bb55e63de02f7b2f3a2f71b59b840db21d61ff7cd41edbfc2da448a/scipy-1.11.1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
scipy	1.11.2	compiled	pypi	scipy-1.11.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl	3aeb87661de987f8ec56fa6950863994cd427209158255a389fc5aea51fa7055	https://files.pythonhosted.org/packages/0e/a0/8606a7eef659f3d5f79d9efb92eed3ed1243178f4ae962614e1b202935a6/scipy-1.11.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
scipy	1.11.3	compiled	pypi	scipy-1.11.3-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl	5f290cf561a4b4edfe8d1001ee4be6da60c1c4ea712985b58bf6bc62badee221	https://files.pythonhosted.org/packages/ef/1b/7538792254aec6850657d5b940fd05fe60582af829ffe40d6c054f065f34/scipy-1.11.3-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
scipy	1.11.4	compiled	pypi	scipy-1.11.4-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl	530f9ad26440e85766509dbf78edcfe13ffd0ab7fec2560ee5c36ff74d6269ff	https://files.pythonhosted.org/packages/6b/d4/d62ce38ba00dc67d7ec4ec5cc19d36958d8ed70e63778715ad626bcbc796/scipy-1.11.4-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
scipy	1.12.0	compiled	pypi	scipy-1.12.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl	8b8066bce124ee5531d12a74b617d9ac0ea59245246410e19bca549656d9a40a	https://files.pythonhosted.org/packages/d4/b8/7169935f9a2ea9e274ad8c21d6133d492079e6ebc3fc69a915c2375616b0/scipy-1.12.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
scipy	1.13.0	compiled	pypi	scipy-1.13.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl	9ff7dad5d24a8045d836671e082a490848e8639cabb3dbdacb29f943a678683d	https://files.pythonhosted.org/packages/e8/fb/e5955e2ddbdf2baee461eb53ec8d0adedd20a6dfc5510ef8d5e7e44ba461/scipy-1.13.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
scipy	1.13.1	compiled	pypi	scipy-1.13.1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl	a78b4b3345f1b6f68a763c6e25c0c9a23a9fd0f39f5f3d200efe8feda560a5fa	https://files.pythonhosted.org/packages/36/07/035d22ff9795129c5a847c64cb43c1fa9188826b59344fee28a3ab02e283/scipy-1.13.1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
pandas	2.1.1	compiled	pypi	pandas-2.1.1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl	dc3657869c7902810f32bd072f0740487f9e030c1a3ab03e0af093db35a9d14e	https://files.pythonhosted.org/packages/de/ce/b5d9c7ce1aaf9023b823c81932a50cd5e8f407198a696b0d1c6025a40b03/pandas-2.1.1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
pandas	2.1.2	compiled	pypi	pandas-2.1.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl	52867d69a54e71666cd184b04e839cff7dfc8ed0cd6b936995117fdae8790b69	https://files.pythonhosted.org/packages/f1/c5/1e9c317a5e6af9280ad86a523ab6efe2ca70a0eb4bfb2220d8d08e255ae1/pandas-2.1.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
pandas	2.1.3	compiled	pypi	pandas-2.1.3-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl	d5ded6ff28abbf0ea7689f251754d3789e1edb0c4d0d91028f0b980598418a58	https://files.pythonhosted.org/packages/08/de/d4448c423484537ebc9373d3da2496a2e47f42ea11ff48e025cf49665471/pandas-2.1.3-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
pandas	2.1.4	compiled	pypi	pandas-2.1.4-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl	d797591b6846b9db79e65dc2d0d48e61f7db8d10b2a9480b4e3faaddc421a171	https://files.pythonhosted.org/packages/f8/8c/9ad173c5cd2c7178c84075c02ec37b5d1d53fb1d015f51ea3e623ea9c31c/pandas-2.1.4-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
EOF
)"

die() { echo "build.sh: error: $*" >&2; exit 1; }
log() { echo "build.sh: $*" >&2; }

need_tools() {
  local t
  for t in curl python3 sha256sum nix-store nix-hash; do
    command -v "$t" >/dev/null 2>&1 \
      || die "missing tool '$t' (nix-store/nix-hash: apt-get install -y nix-bin)"
  done
}

# fetch REGISTRY FILE SHA LOCATOR -> prints the path of the verified cached archive.
fetch() {
  local registry=$1 file=$2 sha=$3 locator=$4 dest got tmp
  dest="$CACHE/$registry/$file"
  mkdir -p "$CACHE/$registry"
  if [[ -f "$dest" ]] && [[ "$(sha256sum <"$dest" | cut -d' ' -f1)" == "$sha" ]]; then
    echo "$dest"; return 0
  fi
  tmp="$(mktemp -d "$CACHE/$registry/.dl.XXXXXX")"
  case "$registry" in
    pypi)
      curl -fsSL --retry 3 -o "$tmp/$file" "$locator" || { rm -rf "$tmp"; die "download failed: $locator"; } ;;
    debian)
      command -v apt-get >/dev/null 2>&1 && command -v dpkg-deb >/dev/null 2>&1 \
        || { rm -rf "$tmp"; die "Debian entries need apt-get and dpkg-deb"; }
      (cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root "$locator" >&2) \
        || { rm -rf "$tmp"; die "apt-get download $locator failed (version no longer in the apt indices? try apt-get update)"; }
      [[ -f "$tmp/$file" ]] || { ls -la "$tmp" >&2; rm -rf "$tmp"; die "apt-get download did not produce $file"; } ;;
    *) rm -rf "$tmp"; die "unknown registry $registry" ;;
  esac
  got="$(sha256sum <"$tmp/$file" | cut -d' ' -f1)"
  if [[ "$got" != "$sha" ]]; then
    rm -rf "$tmp"; die "sha256 mismatch for $file: pinned $sha, got $got"
  fi
  mv -f "$tmp/$file" "$dest"; rm -rf "$tmp"
  echo "$dest"
}

# unpack_wheel ZIP DIR: extract a wheel, taking exec bits and symlinks from the
# zip's Unix mode bits; every regular file gets 0644 or 0755, nothing else.
unpack_wheel() {
  python3 - "$1" "$2" <<'PY'
import os, stat, sys, zipfile
src, root = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(src) as z:
    for info in z.infolist():
        name = info.filename
        parts = [p for p in name.split("/") if p not in ("", ".")]
        if name.startswith("/") or ".." in parts or not parts:
            sys.exit(f"unsafe or empty path in {src}: {name!r}")
        path = os.path.join(root, *parts)
        mode = info.external_attr >> 16
        if name.endswith("/") or stat.S_ISDIR(mode):
            os.makedirs(path, exist_ok=True)
            continue
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if os.path.lexists(path):
            sys.exit(f"duplicate entry in {src}: {name!r}")
        data = z.read(info)
        if stat.S_ISLNK(mode):
            os.symlink(data.decode(), path)
            continue
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, 0o755 if mode & 0o111 else 0o644)
PY
}

# unpack KIND-OF-ARCHIVE FILE DIR
unpack() {
  local archive=$1 dir=$2
  mkdir -p "$dir"
  case "$archive" in
    *.whl) unpack_wheel "$archive" "$dir" ;;
    *.deb) dpkg-deb -x "$archive" "$dir" ;;  # keeps modes and symlinks from data.tar
    *) die "don't know how to unpack $archive" ;;
  esac
}

# build INPUTS OUTDIR [LIMIT]: write NARs, MANIFEST.tsv and SHA256SUMS into OUTDIR.
build() {
  local inputs=$1 out=$2 limit=${3:-0} work n=0
  mkdir -p "$out"
  work="$(mktemp -d "${TMPDIR:-/tmp}/narfs-corpus.XXXXXX")"
  # shellcheck disable=SC2064
  trap "rm -rf '$work'" EXIT
  local manifest="$work/MANIFEST.tsv" sums="$work/SHA256SUMS"
  printf 'file\tpackage\tversion\tkind\tsource\tarchive_sha256\tnar_sha256\tnar_size\tnar_hash_nix32\n' >"$manifest"
  : >"$sums"
  local pkg ver kind reg file sha loc archive nar tree t0 t1 nsha nsize nix32
  while IFS=$'\t' read -r pkg ver kind reg file sha loc; do
    [[ -z "$pkg" || "$pkg" == \#* ]] && continue
    if [[ "$limit" -gt 0 && "$n" -ge "$limit" ]]; then break; fi
    n=$((n + 1))
    t0=$(date +%s%N)
    nar="$pkg-$ver.nar"
    archive="$(fetch "$reg" "$file" "$sha" "$loc")"
    tree="$work/tree"
    rm -rf "$tree"
    unpack "$archive" "$tree"
    nix-store --dump "$tree" >"$out/$nar.tmp"
    if [[ "$VERIFY" == 1 ]]; then
      rm -rf "$work/restored"
      nix-store --restore "$work/restored" <"$out/$nar.tmp"
      nix-store --dump "$work/restored" | cmp -s - "$out/$nar.tmp" \
        || die "$nar: restore + dump is not byte-identical"
      rm -rf "$work/restored"
    fi
    rm -rf "$tree"
    mv -f "$out/$nar.tmp" "$out/$nar"
    nsha="$(sha256sum <"$out/$nar" | cut -d' ' -f1)"
    nsize="$(stat -c %s "$out/$nar")"
    nix32="$(nix-hash --type sha256 --flat --base32 "$out/$nar")"
    printf '%s\t%s\t%s\t%s\t%s:%s\t%s\t%s\t%s\tsha256:%s\n' \
      "$nar" "$pkg" "$ver" "$kind" "$reg" "$file" "$sha" "$nsha" "$nsize" "$nix32" >>"$manifest"
    printf '%s  %s\n' "$nsha" "$nar" >>"$sums"
    t1=$(date +%s%N)
    log "$(printf '%-36s %11d bytes  %6d ms' "$nar" "$nsize" "$(((t1 - t0) / 1000000))")"
  done <<<"$inputs"
  mv -f "$manifest" "$out/MANIFEST.tsv"
  mv -f "$sums" "$out/SHA256SUMS"
  (cd "$out" && sha256sum -c --quiet SHA256SUMS) || die "sha256sum -c failed in $out"
  log "wrote $n NARs, $(du -cb "$out"/*.nar | tail -1 | cut -f1) bytes, into $out"
}

need_tools
mode="${1:-small}"
case "$mode" in
  small) build "$SMALL_INPUTS" "${2:-$HERE}" ;;
  large)
    [[ $# -ge 2 ]] || die "usage: build.sh large OUTDIR [N]"
    build "$LARGE_INPUTS" "$2" "${3:-0}"
    # Every NAR built must match the reference recorded in corpus/large.MANIFEST.tsv.
    if [[ -f "$HERE/large.MANIFEST.tsv" ]]; then
      grep -vxFf "$HERE/large.MANIFEST.tsv" "$2/MANIFEST.tsv" >&2 \
        && die "the lines above differ from corpus/large.MANIFEST.tsv"
      log "large: all NARs match corpus/large.MANIFEST.tsv"
    fi ;;
  verify)
    tmpout="$(mktemp -d "${TMPDIR:-/tmp}/narfs-corpus-verify.XXXXXX")"
    (build "$SMALL_INPUTS" "$tmpout")
    cmp "$HERE/SHA256SUMS" "$tmpout/SHA256SUMS" || die "rebuilt SHA256SUMS differ from corpus/SHA256SUMS"
    cmp "$HERE/MANIFEST.tsv" "$tmpout/MANIFEST.tsv" || die "rebuilt MANIFEST.tsv differs"
    rm -rf "$tmpout"
    log "verify: rebuilt corpus is byte-identical to corpus/" ;;
  *) die "unknown mode '$mode' (small | large OUTDIR [N] | verify)" ;;
esac
