"""The optional LLM judge (``analyze.py --judge``): what each stretch of a conversation is about.

Three pieces, one idea each:

* reply.py: what is asked and what must come back (chunks of about five
  messages, the prompt messages, the JSON schema and GBNF grammar of the
  reply, parsing it, words recurring across chunks); pure;
* client.py: the judge server (``Judge``, ``open_judge`` for a URL or the
  embedded llama-server, ``JudgeUnavailable``);
* folders.py: ``judge_folders``, every conversation of analysed folders
  judged in place (progress.py draws its bar).

``judge_folders`` is the entry point: ``from broken_record.analysis.judge
import judge_folders``.
"""

from broken_record.analysis.judge.folders import judge_folders

__all__ = ["judge_folders"]
