// Private to src/replace: the journal's record format (docs/journal.md) and
// small shared helpers.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "doppel/replace.h"

namespace doppel {

inline constexpr int kJournalVersion = 1;

// "PREFIX-20261201T213000Z-1a2b": ids of plans and operations, sortable by
// time.
std::string NewOperationId(const std::string& prefix);

uint32_t Crc32(const std::string& bytes);

// One planned action as the plan file and the journal record it
// (docs/plan.md); ActionFromJson throws nlohmann::json::exception on a
// malformed object (callers catch it in their adapter).
nlohmann::json ActionJson(const PlannedAction& a);
PlannedAction ActionFromJson(const nlohmann::json& j);

// One journal line: 8 hex digits of the CRC-32 of the JSON text, a space, the
// JSON text, a newline.
std::string JournalLine(const nlohmann::json& record);

// What a journal says happened, replayed from its records.
struct JournalState {
  bool ready = false;      // the operation's intent is complete on disk
  bool committed = false;  // every action finished
  bool undo_begun = false, undo_committed = false;
  nlohmann::json begin;  // the begin record
  std::string undo_operation;
  std::vector<nlohmann::json> planned;    // by index
  std::map<int, nlohmann::json> started;  // index -> its "action" record
  std::map<int, std::string> finished;    // index -> "done" | "skipped"
  std::map<int, int> steps_done;          // index -> steps completed (in order)
  std::map<int, int> undo_steps_done;
  std::map<int, std::string> undone;  // index -> "undone" | "left"
  int64_t records = 0;
  bool torn_tail = false;  // a last, partial record was ignored
  size_t valid_bytes = 0;  // length of the intact records
};

// Cuts a torn last record off the journal so new records can follow.
Status RepairJournal(Env& env, const std::string& path, const JournalState& state);

// OK unless the trash of the operation journaled at `path` was purged (even
// partly): then an error naming the files that can no longer be
// restored (kInvalidArgument, like an operation already undone; trash.cc).
// Undo calls it before touching anything.
Status RefuseIfPurged(Env& env, const std::string& path, const std::string& operation);

// Reads and replays a journal. A torn last line (the process died while
// appending it) is ignored; a bad record followed by good ones is corruption.
Result<JournalState> ReadJournal(Env& env, const std::string& path);

}  // namespace doppel
