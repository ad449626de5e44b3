#include "worker/models/tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <unicode/locid.h>
#include <unicode/normalizer2.h>
#include <unicode/unistr.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "common/bounded_parse.h"
#include "common/file_util.h"

namespace sd2::worker::models {
namespace {

constexpr const char* kSot = "<|startoftext|>";
constexpr const char* kEot = "<|endoftext|>";
constexpr const char* kPattern =
    "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|"
    "[^\\s\\p{L}\\p{N}]+";

// UTF-8 decode; invalid bytes become U+FFFD (as Python's errors="replace").
std::u32string Utf8Decode(const std::string& s) {
  std::u32string out;
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || i + len > s.size()) {
      out.push_back(0xFFFD);
      ++i;
      continue;
    }
    char32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
    bool ok = true;
    for (int k = 1; k < len; ++k) {
      unsigned char d = static_cast<unsigned char>(s[i + k]);
      if ((d >> 6) != 2) {
        ok = false;
        break;
      }
      cp = (cp << 6) | (d & 0x3F);
    }
    if (!ok) {
      out.push_back(0xFFFD);
      ++i;
      continue;
    }
    out.push_back(cp);
    i += len;
  }
  return out;
}

void AppendUtf8(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string Utf8Encode(const std::u32string& s) {
  std::string out;
  for (char32_t c : s) AppendUtf8(c, &out);
  return out;
}

// Python's str.isspace().
bool IsSpace(char32_t c) {
  return (c >= 9 && c <= 13) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

// html.unescape for numeric references and the common named entities.
std::u32string HtmlUnescape(const std::u32string& s) {
  static const std::pair<const char*, char32_t> kNamed[] = {
      {"amp", '&'},      {"lt", '<'},        {"gt", '>'},       {"quot", '"'},
      {"apos", '\''},    {"nbsp", 0xA0},     {"copy", 0xA9},    {"reg", 0xAE},
      {"trade", 0x2122}, {"hellip", 0x2026}, {"mdash", 0x2014}, {"ndash", 0x2013},
      {"lsquo", 0x2018}, {"rsquo", 0x2019},  {"ldquo", 0x201C}, {"rdquo", 0x201D},
      {"eacute", 0xE9},  {"euro", 0x20AC},   {"deg", 0xB0}};
  std::u32string out;
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] != '&') {
      out.push_back(s[i++]);
      continue;
    }
    size_t semi = s.find(U';', i);
    if (semi != std::u32string::npos && semi - i <= 10) {
      std::string name;
      for (size_t k = i + 1; k < semi; ++k) name.push_back(s[k] < 128 ? char(s[k]) : '?');
      bool done = false;
      if (name.size() > 1 && name[0] == '#') {
        char32_t cp = 0;
        bool hex = name[1] == 'x' || name[1] == 'X';
        size_t start = hex ? 2 : 1;
        bool ok = start < name.size();
        for (size_t k = start; k < name.size() && ok; ++k) {
          char ch = name[k];
          int v = std::isdigit(static_cast<unsigned char>(ch)) ? ch - '0'
                  : hex && std::isxdigit(static_cast<unsigned char>(ch))
                      ? std::tolower(ch) - 'a' + 10
                      : -1;
          if (v < 0 || cp > 0x10FFFF) ok = false;
          cp = cp * (hex ? 16 : 10) + v;
        }
        if (ok && cp <= 0x10FFFF && cp != 0) {
          out.push_back(cp);
          done = true;
        }
      } else {
        for (const auto& [n, cp] : kNamed) {
          if (name == n) {
            out.push_back(cp);
            done = true;
            break;
          }
        }
      }
      if (done) {
        i = semi + 1;
        continue;
      }
    }
    out.push_back(s[i++]);
  }
  return out;
}

// CLIP's bytes_to_unicode(): byte -> UTF-8 string of its printable stand-in.
const std::vector<std::string>& ByteEncoder() {
  static const std::vector<std::string> table = [] {
    std::vector<int> bs;
    for (int b = '!'; b <= '~'; ++b) bs.push_back(b);
    for (int b = 0xA1; b <= 0xAC; ++b) bs.push_back(b);
    for (int b = 0xAE; b <= 0xFF; ++b) bs.push_back(b);
    std::vector<int> cs = bs;
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      if (std::find(bs.begin(), bs.end(), b) == bs.end()) {
        bs.push_back(b);
        cs.push_back(256 + n++);
      }
    }
    std::vector<std::string> t(256);
    for (size_t k = 0; k < bs.size(); ++k) {
      std::string u;
      AppendUtf8(static_cast<char32_t>(cs[k]), &u);
      t[bs[k]] = u;
    }
    return t;
  }();
  return table;
}

std::shared_ptr<void> CompilePattern() {
  int err = 0;
  PCRE2_SIZE off = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(kPattern), PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_CASELESS | PCRE2_MATCH_INVALID_UTF,
                                   &err, &off, nullptr);
  return std::shared_ptr<void>(code, [](void* p) {
    if (p) pcre2_code_free(static_cast<pcre2_code*>(p));
  });
}

// The pre-tokenised pieces of cleaned text.
std::vector<std::string> PreTokenize(const void* regex, const std::string& text) {
  std::vector<std::string> pieces;
  const auto* code = static_cast<const pcre2_code*>(regex);
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(code, nullptr);
  PCRE2_SIZE offset = 0;
  while (offset <= text.size()) {
    int rc = pcre2_match(code, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), offset, 0,
                         md, nullptr);
    if (rc < 0) break;
    PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    if (ov[1] == ov[0]) {
      offset = ov[1] + 1;
      continue;
    }
    pieces.emplace_back(text.substr(ov[0], ov[1] - ov[0]));
    offset = ov[1];
  }
  pcre2_match_data_free(md);
  return pieces;
}

// Splits a byte-encoded word into UTF-8 characters, the last one with "</w>".
std::vector<std::string> InitialSymbols(const std::string& token) {
  std::vector<std::string> word;
  std::string bytes_encoded;
  for (unsigned char c : token) bytes_encoded += ByteEncoder()[c];
  for (char32_t cp : Utf8Decode(bytes_encoded)) {
    std::string ch;
    AppendUtf8(cp, &ch);
    word.push_back(ch);
  }
  if (!word.empty()) word.back() += "</w>";
  return word;
}

void ApplyMerge(const std::string& first, const std::string& second,
                std::vector<std::string>* word) {
  std::vector<std::string> out;
  out.reserve(word->size());
  for (size_t i = 0; i < word->size();) {
    if (i + 1 < word->size() && (*word)[i] == first && (*word)[i + 1] == second) {
      out.push_back(first + second);
      i += 2;
    } else {
      out.push_back((*word)[i]);
      ++i;
    }
  }
  *word = std::move(out);
}

std::vector<std::string> BaseVocab() {
  std::vector<std::string> v;
  // bytes_to_unicode order (printable first), as CLIP's vocab list.
  std::vector<int> bs;
  for (int b = '!'; b <= '~'; ++b) bs.push_back(b);
  for (int b = 0xA1; b <= 0xAC; ++b) bs.push_back(b);
  for (int b = 0xAE; b <= 0xFF; ++b) bs.push_back(b);
  for (int b = 0; b < 256; ++b)
    if (std::find(bs.begin(), bs.end(), b) == bs.end()) bs.push_back(b);
  for (int b : bs) v.push_back(ByteEncoder()[b]);
  for (int b : bs) v.push_back(ByteEncoder()[b] + "</w>");
  return v;
}

}  // namespace

std::string CleanText(const std::string& text) {
  std::u32string s = HtmlUnescape(HtmlUnescape(Utf8Decode(text)));
  std::u32string collapsed;
  bool pending_space = false;
  for (char32_t c : s) {
    if (IsSpace(c)) {
      pending_space = !collapsed.empty();
      continue;
    }
    if (pending_space) collapsed.push_back(U' ');
    pending_space = false;
    collapsed.push_back(c);
  }
  // NFC (ftfy's last step in OpenAI's tokenizer; transformers' normalizer) and Unicode's full
  // lower-case mapping (Python's str.lower: "İ" -> "i̇", final sigma) through ICU.
  const std::string utf8 = Utf8Encode(collapsed);
  UErrorCode err = U_ZERO_ERROR;
  const icu::Normalizer2* nfc = icu::Normalizer2::getNFCInstance(err);
  if (U_FAILURE(err) || nfc == nullptr) return utf8;
  icu::UnicodeString u = nfc->normalize(icu::UnicodeString::fromUTF8(utf8), err);
  if (U_FAILURE(err)) return utf8;
  u.toLower(icu::Locale::getRoot());
  std::string out;
  u.toUTF8String(out);
  return out;
}

StatusOr<Tokenizer> Tokenizer::Build(std::unordered_map<std::string, int> vocab,
                                     std::vector<std::pair<std::string, std::string>> merges) {
  Tokenizer t;
  t.regex_ = CompilePattern();
  if (!t.regex_) return InternalError("tokenizer: PCRE2 failed to compile CLIP's pattern");
  int max_id = -1;
  for (const auto& [tok, id] : vocab) {
    if (id < 0 || id > 10'000'000)
      return InvalidArgumentError("tokenizer: bad id " + std::to_string(id) + " for token '" + tok +
                                  "'");
    max_id = std::max(max_id, id);
  }
  t.id_to_token_.assign(size_t(max_id + 1), "");
  for (const auto& [tok, id] : vocab) t.id_to_token_[size_t(id)] = tok;
  auto find = [&](const char* s) {
    auto it = vocab.find(s);
    return it == vocab.end() ? -1 : it->second;
  };
  t.sot_id_ = find(kSot);
  t.eot_id_ = find(kEot);
  if (t.sot_id_ < 0 || t.eot_id_ < 0)
    return InvalidArgumentError("tokenizer: vocabulary lacks <|startoftext|> or <|endoftext|>");
  for (size_t i = 0; i < merges.size(); ++i) t.ranks_.emplace(merges[i], int(i));
  t.vocab_ = std::move(vocab);
  t.merges_ = std::move(merges);
  return t;
}

StatusOr<Tokenizer> Tokenizer::FromMerges(
    const std::vector<std::pair<std::string, std::string>>& merges) {
  std::vector<std::string> list = BaseVocab();
  for (const auto& m : merges) list.push_back(m.first + m.second);
  list.push_back(kSot);
  list.push_back(kEot);
  std::unordered_map<std::string, int> vocab;
  for (size_t i = 0; i < list.size(); ++i) vocab[list[i]] = int(i);
  if (vocab.size() != list.size())
    return InvalidArgumentError("tokenizer: merges produce duplicate tokens");
  return Build(std::move(vocab), merges);
}

StatusOr<Tokenizer> Tokenizer::FromOpenAiGz(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) return NotFoundError("tokenizer: cannot open " + path);
  std::string content;
  char buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof(buf))) > 0) content.append(buf, size_t(n));
  int errnum = 0;
  const char* msg = gzerror(f, &errnum);
  std::string err = errnum < 0 ? std::string(msg) : "";
  gzclose(f);
  if (n < 0 || !err.empty()) return DataLossError("tokenizer: gzip error in " + path + ": " + err);
  std::istringstream in(content);
  std::string line;
  std::vector<std::pair<std::string, std::string>> merges;
  std::getline(in, line);  // header
  const size_t kMaxMerges = 49152 - 256 - 2;
  int line_no = 1;
  while (merges.size() < kMaxMerges && std::getline(in, line)) {
    ++line_no;
    if (line.empty()) continue;
    size_t sp = line.find(' ');
    if (sp == std::string::npos || sp == 0 || sp + 1 >= line.size())
      return DataLossError("tokenizer: " + path + " line " + std::to_string(line_no) +
                           " is not a merge: '" + line + "'");
    merges.emplace_back(line.substr(0, sp), line.substr(sp + 1));
  }
  if (merges.empty()) return DataLossError("tokenizer: no merges in " + path);
  return FromMerges(merges);
}

StatusOr<Tokenizer> Tokenizer::FromHfFiles(const std::string& vocab_json,
                                           const std::string& merges_txt) {
  SD2_ASSIGN_OR_RETURN(std::string vtext, ReadFile(vocab_json));
  SD2_ASSIGN_OR_RETURN(std::string mtext, ReadFile(merges_txt));
  std::unordered_map<std::string, int> vocab;
  try {
    auto j = ParseJsonBoundedOrThrow(vtext);
    if (!j.is_object())
      return InvalidArgumentError("tokenizer: " + vocab_json + " is not a JSON object");
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (!it.value().is_number_integer())
        return InvalidArgumentError("tokenizer: " + vocab_json + ": id of '" + it.key() +
                                    "' is not an integer");
      vocab[it.key()] = it.value().get<int>();
    }
  } catch (const nlohmann::json::exception& e) {
    return InvalidArgumentError("tokenizer: " + vocab_json + ": " + e.what());
  }
  std::vector<std::pair<std::string, std::string>> merges;
  std::istringstream in(mtext);
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || (line_no == 1 && line.rfind("#version", 0) == 0)) continue;
    size_t sp = line.find(' ');
    if (sp == std::string::npos || sp == 0 || sp + 1 >= line.size())
      return InvalidArgumentError("tokenizer: " + merges_txt + " line " + std::to_string(line_no) +
                                  " is not a merge: '" + line + "'");
    merges.emplace_back(line.substr(0, sp), line.substr(sp + 1));
  }
  return Build(std::move(vocab), std::move(merges));
}

StatusOr<Tokenizer> Tokenizer::FromHfDir(const std::string& dir) {
  return FromHfFiles(dir + "/vocab.json", dir + "/merges.txt");
}

std::vector<std::string> Tokenizer::Bpe(const std::string& token) const {
  if (token == kSot || token == kEot) return {token};
  std::vector<std::string> word = InitialSymbols(token);
  while (word.size() > 1) {
    int best = -1;
    size_t best_i = 0;
    for (size_t i = 0; i + 1 < word.size(); ++i) {
      auto it = ranks_.find({word[i], word[i + 1]});
      if (it != ranks_.end() && (best < 0 || it->second < best)) {
        best = it->second;
        best_i = i;
      }
    }
    if (best < 0) break;
    std::string first = word[best_i], second = word[best_i + 1];
    ApplyMerge(first, second, &word);
  }
  return word;
}

std::vector<int> Tokenizer::Encode(const std::string& text) const {
  std::vector<int> ids;
  auto encode_segment = [&](const std::string& segment) {
    for (const std::string& piece : PreTokenize(regex_.get(), segment)) {
      for (const std::string& sym : Bpe(piece)) {
        auto it = vocab_.find(sym);
        if (it != vocab_.end()) ids.push_back(it->second);
      }
    }
  };
  // The special tokens' strings are atomic wherever they stand (as in transformers), also
  // when glued to punctuation, where OpenAI's regex would split them into "...<|", "endoftext".
  const std::string clean = CleanText(text);
  size_t start = 0;
  while (start <= clean.size()) {
    size_t sot = clean.find(kSot, start), eot = clean.find(kEot, start);
    size_t at = std::min(sot, eot);
    if (at == std::string::npos) {
      encode_segment(clean.substr(start));
      break;
    }
    encode_segment(clean.substr(start, at - start));
    ids.push_back(at == sot ? sot_id_ : eot_id_);
    start = at + (at == sot ? std::strlen(kSot) : std::strlen(kEot));
  }
  return ids;
}

std::vector<int> Tokenizer::EncodeWithContext(const std::string& text, int context) const {
  std::vector<int> ids = Encode(text);
  std::vector<int> out;
  out.push_back(sot_id_);
  size_t keep = context >= 2 ? size_t(context - 2) : 0;
  out.insert(out.end(), ids.begin(), ids.begin() + std::min(keep, ids.size()));
  out.push_back(eot_id_);
  return out;
}

Status Tokenizer::Save(const std::string& dir) const {
  SD2_RETURN_IF_ERROR(MakeDirs(dir));
  nlohmann::json j = nlohmann::json::object();
  for (size_t i = 0; i < id_to_token_.size(); ++i)
    if (!id_to_token_[i].empty()) j[id_to_token_[i]] = int(i);
  std::string merges = "#version: 0.2\n";
  for (const auto& [a, b] : merges_) merges += a + " " + b + "\n";
  SD2_RETURN_IF_ERROR(WriteFileAtomic(dir + "/vocab.json", j.dump()));
  return WriteFileAtomic(dir + "/merges.txt", merges);
}

StatusOr<Tokenizer> LearnBpe(const std::vector<std::string>& texts, int vocab_size) {
  if (vocab_size < 514)
    return InvalidArgumentError(
        "tokenizer learn: --vocab must be at least 514 (bytes, bytes</w>, SOT, EOT), got " +
        std::to_string(vocab_size));
  auto regex = CompilePattern();
  std::map<std::string, int64_t> counts;
  for (const auto& t : texts)
    for (const auto& piece : PreTokenize(regex.get(), CleanText(t)))
      if (piece != kSot && piece != kEot) counts[piece]++;
  std::vector<std::vector<std::string>> words;
  std::vector<int64_t> freq;
  for (const auto& [w, c] : counts) {
    words.push_back(InitialSymbols(w));
    freq.push_back(c);
  }
  std::vector<std::pair<std::string, std::string>> merges;
  const int num_merges = vocab_size - 514;
  std::set<std::string> known;
  for (const auto& v : BaseVocab()) known.insert(v);
  while (int(merges.size()) < num_merges) {
    std::map<std::pair<std::string, std::string>, int64_t> pairs;
    for (size_t w = 0; w < words.size(); ++w)
      for (size_t i = 0; i + 1 < words[w].size(); ++i)
        pairs[{words[w][i], words[w][i + 1]}] += freq[w];
    const std::pair<std::string, std::string>* best = nullptr;
    int64_t best_count = 1;
    for (const auto& [p, c] : pairs) {
      if (c > best_count && !known.count(p.first + p.second)) {
        best = &p;
        best_count = c;
      }
    }
    if (!best) break;
    auto merge = *best;
    merges.push_back(merge);
    known.insert(merge.first + merge.second);
    for (auto& w : words) ApplyMerge(merge.first, merge.second, &w);
  }
  return Tokenizer::FromMerges(merges);
}

}  // namespace sd2::worker::models
