"""Voice settings (recogniser, voice, wake word, push-to-talk key, gates): a part of
:class:`~tools.settings.OslerSettings` (``OSLER_VOICE__ASR_BACKEND``, TOML ``[voice]``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ASK_LEVEL: float | None = None  # set once measured (voice.bench_grammar tune-ask / ask-report): docs/voice.md
REPLY_LEVEL: float | None = None  # likewise (voice.bench_grammar tune-reply)
TAIL_VETO = 3.75  # tuned on dev for runs/tail/t0.pt (tune-tail); not adopted, so the check is off by default: docs/voice.md

__all__ = ["VoiceSettings", "AsrBackend", "TtsBackend"]

AsrBackend = Literal["auto", "whisper", "pocketsphinx", "speechbrain"]
TtsBackend = Literal["auto", "piper", "espeak", "none"]


class VoiceSettings(BaseModel):
    """Everything the voice front end can be told."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    asr_backend: AsrBackend = Field(default="whisper", description="speech recogniser; 'auto' = first that can run")
    tts_backend: TtsBackend = Field(default="auto", description="'auto' = piper, falling back to espeak-ng")
    wake_word: str = Field(default="osler", description="word that must open an utterance in hands-free mode")
    ptt_key: str = Field(default=" ", description="push-to-talk key in the live loop (a foot pedal sends a key)")
    whisper_threads: int = Field(default=2, ge=1, le=64, description="CPU threads of the Whisper decoder")
    whisper_beam_size: int = Field(default=1, ge=1, le=10)
    whisper_compute_type: str = Field(default="int8", description="CTranslate2 compute type: int8, float32, ...")
    whisper_prompt: str = Field(
        default="Osler voice commands: how many white cells, red cells, platelets or polyps are visible? Is there a "
                "polyp? Is there pneumonia? Segment the lesion, polyp or lung. How big is it? What changed? Compare "
                "with the prior. Read back the last finding. Louder. Cancel. Switch image to next.",
        description="initial prompt that primes the domain words (measured: 48/50 clean commands vs 36/50 with a "
                    "bare glossary); an echo of it is dropped and anything else still goes through the strict parser",
    )
    whisper_nbest: int = Field(default=5, ge=1, le=10, description="hypotheses of a beam search rescored against the "
                               "command grammar (the best-scoring one that is a whole command wins); 1 = plain decoding")
    whisper_nbest_margin: float = Field(default=1.0, ge=0.0, description="a lower-ranked hypothesis is taken only when "
                                        "its mean log-probability is within this of the best one")
    whisper_grammar: bool = Field(default=True, description="score every command of the grammar against the audio "
                                  "with Whisper's own decoder (voice.asr_grammar) and take the best one only when it "
                                  "clearly beats the other commands and the free transcript")
    grammar_margin: float = Field(default=7.0, ge=0.0, description="nats the best command must beat any other "
                                  "command by (tuned on development voices: voice.bench_grammar)")
    grammar_gap: float = Field(default=8.0, ge=0.0, description="nats the free transcript may be more likely than "
                               "the best command before the utterance counts as no command")
    grammar_confirm_margin: float = Field(default=4.0, ge=0.0, description="nats by which the command of the free "
                                          "transcript must beat any other command for the grammar to confirm it")
    grammar_primed: bool = Field(default=True, description="score the grammar after the command prompt (True, "
                                 "tuned) or after a prompt naming only the wake word")
    grammar_token_bonus: float = Field(default=1.5, description="nats added per token of a scored sentence (a "
                                       "word insertion bonus: the plain sum favours short commands)")
    spotter: bool = Field(default=True, description="second opinion of the command spotter (voice.spotter, a "
                          "classifier on Whisper's encoder output trained by training/train_spotter.py) beside the "
                          "grammar check; skipped, and said so, when its weights file is missing")
    spotter_path: Path | None = Field(default=None, description="spotter weights (default "
                                      "experts/weights/voice_spotter.pt)")
    spotter_take: float = Field(default=0.7, ge=0.0, le=1.01, description="the spotter's probability at which a "
                                "command the grammar ranked best but did not take is taken (both agree)")
    spotter_veto: float = Field(default=0.1, ge=0.0, le=1.01, description="the spotter's probability for another "
                                "command, or for no command, at which a command is rejected (0: whenever it names "
                                "another class; 1.01: never; the defaults are tuned on development voices: "
                                "voice.bench_grammar tune-spotter)")
    spotter_veto_added: float | None = Field(default=None, ge=0.0, le=1.01, description="the spotter's probability "
                                             "for no command at which a command said in a natural phrasing added "
                                             "after the spotter was trained ('do you see a polyp') is rejected "
                                             "(None: spotter_veto, as any command)")
    spotter_alone: float = Field(default=0.7, ge=0.0, le=1.01, description="the spotter's probability at which "
                                 "its command is taken when the grammar check left none, whatever the grammar "
                                 "ranked best (1.01: never)")
    tail: bool = Field(default=False, description="(measured, not adopted: off; docs/voice.md) rest-of-utterance "
                       "check (voice.tail, a CTC word net on Whisper's encoder output trained by "
                       "training/train_tail.py): a command followed by more speech is not executed ('how many "
                       "platelets are in the fridge'); skipped, and said so, without its weights")
    tail_path: Path | None = Field(default=None, description="rest-of-utterance weights (default "
                                   "experts/weights/voice_tail.pt)")
    tail_veto: float = Field(default=TAIL_VETO, ge=0.0, description="nats by which 'the command, then more "
                             "speech' must beat 'the command alone' for the command to be rejected (tuned on "
                             "development voices: voice.bench_grammar tune-tail)")
    ask_level: float | None = Field(default=ASK_LEVEL, ge=0.0, le=1.0, description="live video: an utterance the "
                                    "recogniser rejects is proposed back ('Did you mean: how many polyps? Say yes "
                                    "or no.') when the command spotter's best guess reaches this probability "
                                    "(None: never; tuned on development voices: voice.bench_grammar tune-ask)")
    reply_level: float | None = Field(default=REPLY_LEVEL, ge=0.0, le=1.0, description="live video, while a "
                                      "proposal waits: an utterance the recogniser rejects is taken as 'yes' or "
                                      "'no' when the spotter's likelier of the two reaches this probability (None: "
                                      "only as the recogniser takes them; voice.bench_grammar tune-reply)")
    whisper_hotwords: str | None = Field(default=None, description="faster-whisper hotwords (extra priming text)")
    denoise: Literal["off", "stationary"] = Field(
        default="off", description="noise suppression before recognition: 'stationary' = spectral gating "
        "(noisereduce) against the utterance's own steady noise floor; measured in docs/voice.md")
    whisper_max_tokens: int = Field(default=48, ge=8, le=224, description="a command is short; caps runaway "
                                    "repetition on noise")
    espeak_voice: str = Field(default="en-us", description="espeak-ng voice of the fallback speaker")
    speech_rate: float = Field(default=1.0, gt=0.3, lt=3.0, description="speaking speed multiplier")
    volume: float = Field(default=1.0, gt=0.0, le=4.0, description="answer volume; 'louder' raises it")
    min_sample_rate: int = Field(default=16000, description="refuse recordings made below this rate (Hz)")
    max_seconds: float = Field(default=30.0, gt=0, description="refuse utterances longer than this")
    silence_dbfs: float = Field(default=-50.0, description="loudest 30 ms frame below this = silent recording")
    clip_fraction: float = Field(default=0.01, gt=0, lt=1, description="more full-scale samples than this = clipped")
    end_silence_s: float = Field(default=0.6, gt=0, description="live wake-word mode: silence that ends an utterance")
    out_dir: Path | None = Field(default=None, description="where answer WAVs go (default: data_dir/voice)")
