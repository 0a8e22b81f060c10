#!/bin/sh
# Makes the SentencePiece golden test data of internal/tokenizer (run from
# this folder; needs spm_train and spm_encode, Debian package
# sentencepiece 0.1.97). CI does not rerun it: the tests read the files.
#
#   botchan.txt                     training and eval text (from
#                                   google/sentencepiece data/botchan.txt,
#                                   a Project Gutenberg book)
#   spm_upstream_test_*.model       google/sentencepiece python/test models
#   spm_*.model                     small models trained below
#   strings.txt                     hand-written test strings, one a line
#   NAME.strings.ids                spm_encode --output_format=id of
#                                   strings.txt with model NAME.model
#   NAME.botchan.ids                the same for the first 400 lines of
#                                   botchan.txt
set -eu
train() { # name, options...
	name=$1
	shift
	spm_train --input=botchan.txt --model_prefix="$name" --vocab_size=1024 \
		--seed_sentencepiece_size=100000 --num_threads=1 "$@" >/dev/null 2>&1
	rm -f "$name.vocab"
}
train spm_unigram_nfkc --model_type=unigram
train spm_unigram_identity_bytes --model_type=unigram --normalization_rule_name=identity \
	--byte_fallback=true --character_coverage=0.99
train spm_unigram_user --model_type=unigram --user_defined_symbols='<mask>,<sep>,ab' \
	--control_symbols='<ctl>' --remove_extra_whitespaces=false --add_dummy_prefix=false \
	--normalization_rule_name=identity
train spm_bpe_nfkc_bytes --model_type=bpe --byte_fallback=true
train spm_bpe_identity --model_type=bpe --normalization_rule_name=identity \
	--user_defined_symbols='<mask>,ing' --character_coverage=0.98
train spm_bpe_identity_bytes --model_type=bpe --normalization_rule_name=identity --byte_fallback=true \
	--character_coverage=0.98
train spm_bpe_suffix --model_type=bpe --treat_whitespace_as_suffix=true --normalization_rule_name=nfkc_cf
head -n 400 botchan.txt > botchan400.tmp
for m in spm_*.model; do
	name=${m%.model}
	spm_encode --model="$m" --output_format=id <strings.txt >"$name.strings.ids"
	spm_encode --model="$m" --output_format=id <botchan400.tmp >"$name.botchan.ids"
done
rm -f botchan400.tmp
