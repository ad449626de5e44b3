// The CLIP byte-level BPE tokenizer (OpenAI's SimpleTokenizer / Hugging Face CLIPTokenizer) and a
// small BPE learner that writes the same Hugging Face format. Torch-free.
//
// Text is cleaned like CLIP's reference (HTML entities unescaped twice, whitespace collapsed and
// stripped, lower-cased; ftfy is not applied), pre-tokenised with CLIP's pattern (PCRE2, UTF +
// UCP), mapped byte -> unicode, suffixed with "</w>" at the end of each word and merged by rank.
//
//   SD2_ASSIGN_OR_RETURN(auto tok, Tokenizer::FromOpenAiGz(".../bpe_simple_vocab_16e6.txt.gz"));
//   std::vector<int> ids = tok.Encode("a photo of a real face.");        // no SOT/EOT
//   std::vector<int> ctx = tok.EncodeWithContext("...", /*context=*/60);  // SOT ... EOT, no
//   padding SD2_RETURN_IF_ERROR(LearnBpe(texts, /*vocab_size=*/1000).Save("/tmp/vocab_dir"));
#ifndef SD2_WORKER_MODELS_TOKENIZER_H_
#define SD2_WORKER_MODELS_TOKENIZER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/status.h"

namespace sd2::worker::models {

class Tokenizer {
 public:
  // OpenAI's merges file (gzip; line 1 a header): 49408 ids for the full file.
  static StatusOr<Tokenizer> FromOpenAiGz(const std::string& path);
  // Hugging Face vocab.json (token -> id) + merges.txt ("#version" header optional).
  static StatusOr<Tokenizer> FromHfFiles(const std::string& vocab_json,
                                         const std::string& merges_txt);
  // A folder with vocab.json + merges.txt.
  static StatusOr<Tokenizer> FromHfDir(const std::string& dir);
  // From in-memory merges (ordered) with CLIP's vocabulary layout: 256 byte chars, the same
  // with "</w>", one token per merge, then <|startoftext|>, <|endoftext|>.
  static StatusOr<Tokenizer> FromMerges(
      const std::vector<std::pair<std::string, std::string>>& merges);

  // BPE ids of the cleaned text, without SOT/EOT.
  std::vector<int> Encode(const std::string& text) const;
  // SOT + ids + EOT; when longer than `context`, keeps the first context-1 tokens (SOT included)
  // and ends with EOT. No padding.
  std::vector<int> EncodeWithContext(const std::string& text, int context) const;

  int sot_id() const { return sot_id_; }
  int eot_id() const { return eot_id_; }
  int vocab_size() const { return static_cast<int>(id_to_token_.size()); }

  // Writes vocab.json + merges.txt (Hugging Face format) into `dir` (created).
  Status Save(const std::string& dir) const;
  const std::vector<std::pair<std::string, std::string>>& merges() const { return merges_; }

 private:
  static StatusOr<Tokenizer> Build(std::unordered_map<std::string, int> vocab,
                                   std::vector<std::pair<std::string, std::string>> merges);
  std::vector<std::string> Bpe(const std::string& word) const;

  std::unordered_map<std::string, int> vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<std::pair<std::string, std::string>> merges_;
  std::map<std::pair<std::string, std::string>, int> ranks_;
  int sot_id_ = -1, eot_id_ = -1;
  std::shared_ptr<void> regex_;  // compiled pcre2 pattern
};

// CLIP's text clean-up: HTML unescape (twice), whitespace collapse + strip, lower-case.
std::string CleanText(const std::string& text);

// Learns a byte-level BPE vocabulary of `vocab_size` ids (at least 514: bytes, bytes</w>, SOT,
// EOT) from texts, with CLIP's pre-tokenisation. Deterministic: the most frequent pair wins,
// ties broken by the smaller pair. Stops early when no pair occurs twice.
StatusOr<Tokenizer> LearnBpe(const std::vector<std::string>& texts, int vocab_size);

}  // namespace sd2::worker::models

#endif  // SD2_WORKER_MODELS_TOKENIZER_H_
