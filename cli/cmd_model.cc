// sd2ctl commands of the model code: `losses FILE.safetensors` (the SD² losses of a batch of
// embeddings, computed by the training code), `tokenizer learn TEXTS --vocab N --out DIR`
// (a byte-level BPE in Hugging Face format) and `tokenizer encode` (CLIP token ids as JSON).
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/command.h"
#include "common/status.h"

#ifdef SD2_HAVE_WORKER_TRAIN
#include "worker/models/tokenizer.h"
#include "worker/train/losses_cli.h"
#endif

namespace sd2::cli {
namespace {

#ifdef SD2_HAVE_WORKER_TRAIN
int Fail(const Status& s) {
  std::cerr << "error: " << s.message() << "\n";
  return ExitCodeFor(s);
}

int RunLosses(int argc, char** argv) {
  if (argc != 2 || std::string(argv[1]) == "--help") {
    std::cerr << "usage: sd2ctl losses FILE.safetensors\n"
                 "  tensors f [B,D], u [5,D], vf [B,D], ve [B,D], y [B] int64, logit_scale, bias,\n"
                 "  optional alpha; prints {\"L_C\",\"L_S\",\"L_D\",\"total\"} (one rank)\n";
    return argc == 2 ? kExitOk : kExitBadInput;
  }
  auto json = worker::train::LossesJsonFromFile(argv[1]);
  if (!json.ok()) return Fail(json.status());
  std::cout << *json << "\n";
  return kExitOk;
}

int RunTokenizerLearn(int argc, char** argv) {
  std::string texts_path, out;
  long vocab = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--vocab" && i + 1 < argc) {
      try {
        vocab = std::stol(argv[++i]);
      } catch (const std::exception&) {
        return Fail(
            InvalidArgumentError(std::string("--vocab needs an integer, got '") + argv[i] + "'"));
      }
    } else if (a == "--out" && i + 1 < argc) {
      out = argv[++i];
    } else if (!a.empty() && a[0] != '-' && texts_path.empty()) {
      texts_path = a;
    } else {
      return Fail(InvalidArgumentError(
          "usage: sd2ctl tokenizer learn TEXTS --vocab N --out DIR (bad argument '" + a + "')"));
    }
  }
  if (texts_path.empty() || out.empty() || vocab <= 0)
    return Fail(InvalidArgumentError("usage: sd2ctl tokenizer learn TEXTS --vocab N --out DIR"));
  std::ifstream in(texts_path);
  if (!in) return Fail(NotFoundError("cannot read " + texts_path));
  std::vector<std::string> texts;
  std::string line;
  while (std::getline(in, line)) texts.push_back(line);
  auto tok = worker::models::LearnBpe(texts, int(vocab));
  if (!tok.ok()) return Fail(tok.status());
  Status s = tok->Save(out);
  if (!s.ok()) return Fail(s);
  std::cout << nlohmann::json({{"vocab_size", tok->vocab_size()},
                               {"merges", tok->merges().size()},
                               {"out", out}})
                   .dump()
            << "\n";
  return kExitOk;
}

int RunTokenizerEncode(int argc, char** argv) {
  std::string vocab_dir, openai;
  int context = 77;
  std::vector<std::string> texts;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--vocab" && i + 1 < argc)
      vocab_dir = argv[++i];
    else if (a == "--openai" && i + 1 < argc)
      openai = argv[++i];
    else if (a == "--context" && i + 1 < argc) {
      try {
        context = std::stoi(argv[++i]);
      } catch (const std::exception&) {
        return Fail(InvalidArgumentError("--context needs an integer"));
      }
    } else
      texts.push_back(a);
  }
  if ((vocab_dir.empty() == openai.empty()) || texts.empty() || context < 2)
    return Fail(InvalidArgumentError(
        "usage: sd2ctl tokenizer encode (--vocab DIR | --openai FILE.gz) [--context N] TEXT..."));
  auto tok = openai.empty() ? worker::models::Tokenizer::FromHfDir(vocab_dir)
                            : worker::models::Tokenizer::FromOpenAiGz(openai);
  if (!tok.ok()) return Fail(tok.status());
  for (const auto& t : texts)
    std::cout << nlohmann::json({{"text", t}, {"ids", tok->EncodeWithContext(t, context)}}).dump()
              << "\n";
  return kExitOk;
}
#else
int NoTorch(int, char**) {
  std::cerr << "error: sd2ctl was built without LibTorch (SD2_WITH_TORCH=OFF)\n";
  return kExitFailure;
}
int RunLosses(int a, char** b) { return NoTorch(a, b); }
int RunTokenizerLearn(int a, char** b) { return NoTorch(a, b); }
int RunTokenizerEncode(int a, char** b) { return NoTorch(a, b); }
#endif

}  // namespace

SD2_REGISTER_COMMAND("losses",
                     "SD2 losses (L_C, L_S, L_D, total) of embeddings in a safetensors file",
                     RunLosses);
SD2_REGISTER_COMMAND("tokenizer learn",
                     "learn a byte-level BPE vocabulary (HF vocab.json + merges.txt)",
                     RunTokenizerLearn);
SD2_REGISTER_COMMAND("tokenizer encode", "CLIP BPE token ids of texts, as JSON lines",
                     RunTokenizerEncode);

}  // namespace sd2::cli
