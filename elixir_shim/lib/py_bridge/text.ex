defmodule PyBridge.Text do
  @moduledoc """
  Text servings, mirroring `Bumblebee.Text`.

  Every function takes the `model_info` and tokenizer from
  `PyBridge.load_model/2` and `PyBridge.load_tokenizer/2`, validates its
  options as Bumblebee does (an unknown option raises `ArgumentError`) and
  returns a `PyBridge.Serving`.
  """

  @typedoc "A text input: a string."
  @type text_input :: String.t()

  @type text_embedding_output :: %{embedding: PyBridge.Tensor.t() | struct()}
  @type text_classification_input :: String.t() | {String.t(), String.t()}
  @type text_classification_output :: %{predictions: [%{label: String.t(), score: float()}]}

  @type cross_encoding_input :: {String.t(), String.t()}
  @type cross_encoding_output :: %{score: float()}

  @type token_classification_input :: String.t()
  @typedoc "`:start` and `:end` are UTF-8 byte offsets into the input text."
  @type token_classification_output :: %{
          entities: [
            %{
              start: non_neg_integer(),
              end: non_neg_integer(),
              label: String.t(),
              score: float(),
              phrase: String.t()
            }
          ]
        }

  @typedoc ~s(A string holding exactly one "[MASK]".)
  @type fill_mask_input :: String.t()
  @type fill_mask_output :: %{predictions: [%{token: String.t(), score: float()}]}

  @type question_answering_input :: %{question: String.t(), context: String.t()}
  @typedoc "One result; `:start` and `:end` are UTF-8 byte offsets into the context."
  @type question_answering_output :: %{
          results: [
            %{text: String.t(), start: non_neg_integer(), end: non_neg_integer(), score: float()}
          ]
        }

  @type zero_shot_classification_input :: String.t()
  @type zero_shot_classification_output :: %{
          predictions: [%{label: String.t(), score: float()}]
        }

  @typedoc "One `{query, document}` pair, or a list of them."
  @type text_reranking_qwen3_input :: {String.t(), String.t()} | [{String.t(), String.t()}]
  @type text_reranking_qwen3_score :: %{score: float(), query: String.t(), document: String.t()}
  @typedoc "Always one map: a single score for a pair, a list for a list of pairs."
  @type text_reranking_qwen3_output :: %{
          scores: text_reranking_qwen3_score() | [text_reranking_qwen3_score()]
        }

  @typedoc "A prompt, or a map with the prompt and the seed for sampling."
  @type generation_input ::
          String.t() | %{:text => String.t(), optional(:seed) => integer() | nil}
  @typedoc "`:text` holds the generated text only, without the prompt."
  @type generation_output :: %{
          results: [
            %{
              text: String.t(),
              token_summary: %{
                input: pos_integer(),
                output: pos_integer(),
                padding: non_neg_integer()
              }
            }
          ]
        }
  @type translation_input :: %{
          :text => String.t(),
          :source_language_token => String.t(),
          :target_language_token => String.t(),
          optional(:seed) => integer() | nil
        }
  @type translation_output :: generation_output()

  @doc """
  Builds a serving that computes an embedding of each text.

  The output is `%{embedding: tensor}`: an `Nx.Tensor` when the application
  has Nx, a `PyBridge.Tensor` otherwise. Texts longer than the model's
  maximum length are truncated.

  ## Options

    * `:output_attribute` - the model output to use: `:pooled_state` (the
      pooler output), `:hidden_state` (the last hidden state) or any other
      output name. Defaults to `:pooled_state`.
    * `:output_pool` - pools a sequence output into one vector:
      `:mean_pooling`, `:cls_token_pooling` or `:last_token_pooling`.
      Defaults to `nil` (no pooling).
    * `:embedding_processor` - `:l2_norm` normalizes the embedding.
      Defaults to `nil`.
    * `:compile` - `[batch_size: n, sequence_length: l]`: the serving's batch
      size, and the length inputs are padded to (a list of lengths picks the
      smallest that fits). Defaults to `nil`.
    * `:defn_options`, `:preallocate_params` - accepted for Bumblebee
      compatibility; they mean nothing here.

  ## Examples

      serving =
        PyBridge.Text.text_embedding(model_info, tokenizer,
          output_attribute: :hidden_state,
          output_pool: :mean_pooling,
          embedding_processor: :l2_norm
        )

      PyBridge.Serving.run(serving, "Elixir is a functional language")
      #=> %{embedding: #Nx.Tensor<f32[384] [...]>}
  """
  @spec text_embedding(PyBridge.model_info(), PyBridge.Tokenizer.t(), keyword()) ::
          PyBridge.Serving.t()
  defdelegate text_embedding(model_info, tokenizer, opts \\ []),
    to: PyBridge.Text.TextEmbedding,
    as: :serving

  @doc """
  Builds a serving that classifies each text (or pair of texts).

  The output is `%{predictions: [%{label: label, score: score}]}`, at most
  `:top_k` predictions sorted by score, highest first. Requires a model with
  the `:for_sequence_classification` architecture.

  ## Options

    * `:top_k` - the number of predictions to return. Defaults to `5`.
    * `:scores_function` - `:softmax`, `:sigmoid` or `:none` (raw logits).
      Defaults to `:softmax`.
    * `:compile` - `[batch_size: n, sequence_length: l]`, as in
      `text_embedding/3`. Defaults to `nil`.
    * `:defn_options`, `:preallocate_params` - accepted for Bumblebee
      compatibility; they mean nothing here.

  ## Examples

      serving = PyBridge.Text.text_classification(model_info, tokenizer, top_k: 2)
      PyBridge.Serving.run(serving, "I love it")
      #=> %{predictions: [%{label: "POSITIVE", score: 0.99}, %{label: "NEGATIVE", score: 0.01}]}
  """
  @spec text_classification(PyBridge.model_info(), PyBridge.Tokenizer.t(), keyword()) ::
          PyBridge.Serving.t()
  defdelegate text_classification(model_info, tokenizer, opts \\ []),
    to: PyBridge.Text.TextClassification,
    as: :serving

  @doc """
  Builds a serving that scores how well two texts go together, with a
  cross-encoder.

  The input is a `{text, text}` pair (a query and a passage, say) and the
  output is `%{score: score}`: the model's single raw logit, with no sigmoid
  applied. Higher means more related. Requires a `:for_sequence_classification`
  model with exactly one label, such as the ms-marco cross-encoders; another
  model fails when the serving starts.

  ## Options

    * `:compile` - `[batch_size: n, sequence_length: l]`, as in
      `text_embedding/3`. Defaults to `nil`.
    * `:defn_options`, `:preallocate_params` - accepted for Bumblebee
      compatibility; they mean nothing here.

  ## Examples

      serving = PyBridge.Text.cross_encoding(model_info, tokenizer)

      PyBridge.Serving.run(serving, [
        {"How many people live in Berlin?", "Berlin has about 3.7 million inhabitants."},
        {"How many people live in Berlin?", "Berlin is well known for its museums."}
      ])
      #=> [%{score: 8.61}, %{score: -4.32}]
  """
  @spec cross_encoding(PyBridge.model_info(), PyBridge.Tokenizer.t(), keyword()) ::
          PyBridge.Serving.t()
  defdelegate cross_encoding(model_info, tokenizer, opts \\ []),
    to: PyBridge.Text.CrossEncoding,
    as: :serving

  @doc """
  Builds a serving that labels the tokens of each text and groups them into
  entities (named-entity recognition).

  The output is `%{entities: [entity]}`, an entity being
  `%{start: start, end: end, label: label, score: score, phrase: phrase}`.
  `:start` and `:end` are UTF-8 **byte** offsets into the text, so
  `binary_part(text, start, end - start)` is the entity's text. Requires a
  `:for_token_classification` model.

  ## Options

    * `:aggregation` - how tokens become entities:

      * `nil` - one entity per token; `:label` keeps its BIO prefix
        (`"B-PER"`) and `:phrase` is the raw token (`"##ing"`).
      * `:same` - adjacent tokens of the same entity are grouped ("B-"
        starts a new one).
      * `:word_first`, `:word_average`, `:word_max` - every token of a word
        first takes one label (from its first token, the average of its
        tokens' scores, or its highest-scoring token), then as `:same`.

      Grouped entities have no BIO prefix in `:label`, score the mean over
      their tokens and carry the decoded text in `:phrase`. Defaults to `nil`.
    * `:ignored_labels` - labels (without their BIO prefix) to leave out.
      Defaults to `["O"]`.
    * `:scores_function` - `:softmax`, `:sigmoid` or `:none` (raw logits).
      Defaults to `:softmax`.
    * `:compile` - `[batch_size: n, sequence_length: l]`, as in
      `text_embedding/3`. Defaults to `nil`.
    * `:defn_options`, `:preallocate_params` - accepted for Bumblebee
      compatibility; they mean nothing here.

  Words are found with the tokenizer's word boundaries; Bumblebee guesses them
  from the tokens' text, and the two agree on WordPiece text without unknown
  words.

  ## Examples

      serving = PyBridge.Text.token_classification(model_info, tokenizer, aggregation: :same)
      PyBridge.Serving.run(serving, "Rachel Green works at Ralph Lauren in New York City")
      #=> %{
      #=>   entities: [
      #=>     %{start: 0, end: 12, label: "PER", score: 0.998, phrase: "Rachel Green"},
      #=>     %{start: 22, end: 34, label: "ORG", score: 0.997, phrase: "Ralph Lauren"},
      #=>     %{start: 38, end: 51, label: "LOC", score: 0.999, phrase: "New York City"}
      #=>   ]
      #=> }
  """
  @spec token_classification(PyBridge.model_info(), PyBridge.Tokenizer.t(), keyword()) ::
          PyBridge.Serving.t()
  defdelegate token_classification(model_info, tokenizer, opts \\ []),
    to: PyBridge.Text.TokenClassification,
    as: :serving

  @doc """
  Builds a serving that predicts the masked word of each text.

  Each text must hold exactly one `"[MASK]"`, or the call raises
  `ArgumentError`; it stands for the tokenizer's own mask token (`"<mask>"`
  for RoBERTa, say). The output is `%{predictions: [%{token: token, score: score}]}`,
  the `:top_k` most likely tokens, highest first, each decoded with leading
  whitespace trimmed. Requires a `:for_masked_language_modeling` model.

  A text is truncated to the model's maximum length; one whose mask falls
  beyond it fails alone with a `:bad_input` `PyBridge.Error`.

  ## Options

    * `:top_k` - the number of predictions to return. Defaults to `5`.
    * `:compile` - `[batch_size: n, sequence_length: l]`, as in
      `text_embedding/3`. Defaults to `nil`.
    * `:defn_options`, `:preallocate_params` - accepted for Bumblebee
      compatibility; they mean nothing here.

  ## Examples

      serving = PyBridge.Text.fill_mask(model_info, tokenizer, top_k: 2)
      PyBridge.Serving.run(serving, "The capital of [MASK] is Paris.")
      #=> %{predictions: [%{token: "france", score: 0.92}, %{token: "brittany", score: 0.01}]}
  """
  @spec fill_mask(PyBridge.model_info(), PyBridge.Tokenizer.t(), keyword()) ::
          PyBridge.Serving.t()
  defdelegate fill_mask(model_info, tokenizer, opts \\ []),
    to: PyBridge.Text.FillMask,
    as: :serving

  @doc """
  Builds a serving that answers a question with a span of a context.

  The input is `%{question: question, context: context}`. The output is
  `%{results: [%{text: text, start: start, end: end, score: score}]}`, with
  exactly one result: `:text` is a span of the context, `:start` and `:end`
  its UTF-8 byte offsets into the context, and `:score` the product of the
  span's start and end probabilities. Requires a `:for_question_answering`
  model. A long context is truncated; the question never is.

  Bumblebee picks the most likely start and end separately; this serving
  picks the most likely span whose start is not after its end, inside the
  context. The two agree whenever Bumblebee's pick is such a span.

  ## Options

    * `:compile` - `[batch_size: n, sequence_length: l]`, as in
      `text_embedding/3`. Defaults to `nil`.
    * `:defn_options`, `:preallocate_params` - accepted for Bumblebee
      compatibility; they mean nothing here.

  ## Examples

      serving = PyBridge.Text.question_answering(model_info, tokenizer)

      PyBridge.Serving.run(serving, %{
        question: "What's my name?",
        context: "My name is Sarah and I live in London."
      })
      #=> %{results: [%{text: "Sarah", start: 11, end: 16, score: 0.93}]}
  """
  @spec question_answering(PyBridge.model_info(), PyBridge.Tokenizer.t(), keyword()) ::
          PyBridge.Serving.t()
  defdelegate question_answering(model_info, tokenizer, opts \\ []),
    to: PyBridge.Text.QuestionAnswering,
    as: :serving

  @doc """
  Builds a serving that classifies each text into `labels` it was never
  trained on, with a natural language inference (NLI) model.

  Each label is turned into a hypothesis ("This example is sports.") and the
  model judges how strongly the text entails it; the labels' entailment
  scores, softmaxed across labels, are their scores. The output is
  `%{predictions: [%{label: label, score: score}]}`, the `:top_k` best,
  highest first. Requires a `:for_sequence_classification` model whose labels
  include `"entailment"` (in any case), or this function raises `ArgumentError`.

  ## Options

    * `:hypothesis_template` - a function of one label that returns its
      hypothesis. It runs here, once per label, when the serving is built.
      Defaults to `fn label -> "This example is \#{label}." end`.
    * `:top_k` - the number of predictions to return, at most the number of
      labels. Defaults to `5`.
    * `:compile` - `[batch_size: n, sequence_length: l]`, as in
      `text_embedding/3`; `:batch_size` counts texts, though the model runs
      on one pair per text and label. Defaults to `nil`.
    * `:defn_options`, `:preallocate_params` - accepted for Bumblebee
      compatibility; they mean nothing here.

  Text and hypothesis are tokenized as a pair the way the model's tokenizer
  does by default (with segment ids for BERT-style models), as the models
  were trained; Bumblebee leaves segment ids out.

  ## Examples

      serving =
        PyBridge.Text.zero_shot_classification(model_info, tokenizer, ["cooking", "traveling", "dancing"],
          hypothesis_template: &"This text is about \#{&1}."
        )

      PyBridge.Serving.run(serving, "One day I will see the world")
      #=> %{
      #=>   predictions: [
      #=>     %{label: "traveling", score: 0.99},
      #=>     %{label: "dancing", score: 0.005},
      #=>     %{label: "cooking", score: 0.002}
      #=>   ]
      #=> }
  """
  @spec zero_shot_classification(
          PyBridge.model_info(),
          PyBridge.Tokenizer.t(),
          [String.t()],
          keyword()
        ) :: PyBridge.Serving.t()
  defdelegate zero_shot_classification(model_info, tokenizer, labels, opts \\ []),
    to: PyBridge.Text.ZeroShotClassification,
    as: :serving

  @doc """
  Builds a serving that scores how relevant documents are to queries, with a
  Qwen3 reranker (a causal language model asked "yes" or "no").

  The input is a `{query, document}` pair or a list of them. The output is
  always **one** map: `%{scores: %{score: score, query: query, document: document}}`
  for a pair and `%{scores: [...]}`, one entry per pair, for a list. `:score`
  is the probability of "yes" against "no", in `[0, 1]`. Requires a
  `:for_causal_language_modeling` model.

  Each pair is written into the prompt
  `instruction_prefix <> "<Instruct>: task\\n<Query>: query\\n<Document>: document" <> instruction_suffix`.
  A prompt longer than the model takes loses the end of its middle part; the
  prefix and suffix are kept whole.

  ## Options

    * `:yes_token` - the token id of the answer "yes". Defaults to `nil`:
      the first token of "yes" in the tokenizer.
    * `:no_token` - the token id of the answer "no". Defaults to `nil`: the
      first token of "no" in the tokenizer.
    * `:instruction_prefix` - the text before the instruction. Defaults to
      Qwen3-Reranker's system prompt and the start of the user turn.
    * `:instruction_suffix` - the text after the document. Defaults to the
      end of the user turn and an assistant turn with an empty `<think>` block.
    * `:task_description` - what relevance means, written after
      `<Instruct>:`. Defaults to
      `"Given a web search query, retrieve relevant passages that answer the query"`.
    * `:compile` - `[batch_size: n, sequence_length: l]`, as in
      `text_embedding/3`. Defaults to `nil`.
    * `:defn_options`, `:preallocate_params` - accepted for Bumblebee
      compatibility; they mean nothing here.

  ## Examples

      serving = PyBridge.Text.text_reranking_qwen3(model_info, tokenizer)

      PyBridge.Serving.run(serving, [
        {"What is the capital of China?", "The capital of China is Beijing."},
        {"What is the capital of China?", "Gravity is a force."}
      ])
      #=> %{
      #=>   scores: [
      #=>     %{score: 0.99, query: "What is the capital of China?", document: "The capital of China is Beijing."},
      #=>     %{score: 0.0001, query: "What is the capital of China?", document: "Gravity is a force."}
      #=>   ]
      #=> }
  """
  @spec text_reranking_qwen3(PyBridge.model_info(), PyBridge.Tokenizer.t(), keyword()) ::
          PyBridge.Serving.t()
  defdelegate text_reranking_qwen3(model_info, tokenizer, opts \\ []),
    to: PyBridge.Text.TextRerankingQwen3,
    as: :serving

  @doc """
  Builds a serving that generates text from a prompt.

  Works with decoder-only models (`:for_causal_language_modeling`, e.g.
  GPT-2, Llama, Qwen) and encoder-decoder ones (`:for_conditional_generation`,
  e.g. T5, BART), which the worker runs with `transformers`' `generate`
  under the rules of `generation_config` (see `PyBridge.Text.GenerationConfig`).

  The input is a prompt, or `%{text: prompt, seed: seed}`; the seed makes
  `:multinomial_sampling` reproducible and defaults to a new one per call.
  The output is `%{results: [%{text: text, token_summary: summary}]}` with
  one result: `text` is the generated text only, and the summary counts the
  prompt's tokens (`:input`), the generated ones, EOS included (`:output`),
  and the pad tokens added to the prompt (`:padding`). Prompts are padded on
  the left, so a prompt gives the same greedy text alone or in a batch; a
  prompt longer than the model takes is truncated.

  ## Options

    * `:compile` - `[batch_size: n, sequence_length: l]`: the serving's batch
      size, and the length prompts are padded to (a list of lengths picks the
      smallest that fits). Defaults to `nil`.
    * `:stream` - when `true`, `PyBridge.Serving.run/2` and
      `PyBridge.Serving.batched_run/3` return a `Stream` of text chunks as
      tokens are generated: text is cut at whitespace, newlines, CJK
      characters and the end, as in Bumblebee. It takes a single input (a
      list raises) and must be consumed in the calling process; stopping
      early (`Enum.take/2`, or the caller exiting) stops the generation in
      the worker. Defaults to `false`.
    * `:stream_done` - when streaming, end the stream with
      `{:done, %{token_summary: summary}}`. Defaults to `false`.
    * `:defn_options`, `:preallocate_params` - accepted for Bumblebee
      compatibility; they mean nothing here.

  Differences from Bumblebee: `:contrastive_search` leaves padding out of
  the degeneration penalty, and sampled text differs for the same seed
  (another random generator), though it is reproducible.

  ## Examples

      {:ok, model_info} = PyBridge.load_model({:hf, "openai-community/gpt2"})
      {:ok, tokenizer} = PyBridge.load_tokenizer({:hf, "openai-community/gpt2"})
      {:ok, generation_config} = PyBridge.load_generation_config({:hf, "openai-community/gpt2"})
      generation_config = PyBridge.configure(generation_config, max_new_tokens: 15)

      serving = PyBridge.Text.generation(model_info, tokenizer, generation_config)
      PyBridge.Serving.run(serving, "Elixir is")
      #=> %{results: [%{text: " a functional language ...", token_summary: %{input: 3, output: 15, padding: 0}}]}

      serving = PyBridge.Text.generation(model_info, tokenizer, generation_config, stream: true)
      PyBridge.Serving.run(serving, "Elixir is") |> Enum.each(&IO.write/1)
  """
  @spec generation(
          PyBridge.model_info(),
          PyBridge.Tokenizer.t(),
          PyBridge.Text.GenerationConfig.t(),
          keyword()
        ) :: PyBridge.Serving.t()
  defdelegate generation(model_info, tokenizer, generation_config, opts \\ []),
    to: PyBridge.Text.Generation,
    as: :serving

  @doc """
  Builds a serving that translates text between the languages of a
  multilingual model such as NLLB or M2M100.

  Requires a `:for_conditional_generation` model. Each input is
  `%{text: text, source_language_token: source, target_language_token: target}`
  (and an optional `:seed`), with language tokens as the tokenizer spells
  them, e.g. `"eng_Latn"`. The source token goes in front of the text and the
  decoder starts with the target token. In a list, all inputs must share one
  `:source_language_token`, otherwise `ArgumentError` is raised. A token the
  tokenizer does not know fails the request with a `:bad_input`
  `PyBridge.Error` from the worker (Bumblebee raises `ArgumentError`, having
  the vocabulary at hand).

  The output and the options are those of `generation/4`, streaming
  included. As in Bumblebee, `:max_new_tokens` bounds the decoder sequence
  after its start token, so the target language token takes one of them.

  ## Examples

      serving = PyBridge.Text.translation(model_info, tokenizer, generation_config)

      PyBridge.Serving.run(serving, %{
        text: "The bank of the river is beautiful in spring",
        source_language_token: "eng_Latn",
        target_language_token: "pol_Latn"
      })
      #=> %{results: [%{text: "W wiosnę brzeg rzeki jest piękny", token_summary: %{...}}]}
  """
  @spec translation(
          PyBridge.model_info(),
          PyBridge.Tokenizer.t(),
          PyBridge.Text.GenerationConfig.t(),
          keyword()
        ) :: PyBridge.Serving.t()
  defdelegate translation(model_info, tokenizer, generation_config, opts \\ []),
    to: PyBridge.Text.Translation,
    as: :serving
end
