defmodule PyBridge.Text.GenerationConfig do
  @moduledoc """
  Options controlling text generation, mirroring `Bumblebee.Text.GenerationConfig`.

  Load one from a repository with `PyBridge.load_generation_config/2`, change
  it with `PyBridge.configure/2`, and pass it to
  `PyBridge.Text.generation/4` or `PyBridge.Text.translation/4`:

      {:ok, generation_config} = PyBridge.load_generation_config({:hf, "gpt2"})

      generation_config =
        PyBridge.configure(generation_config,
          max_new_tokens: 50,
          strategy: %{type: :multinomial_sampling, top_p: 0.9}
        )

  ## Options controlling length

    * `:max_new_tokens` - the maximum number of tokens to generate, not
      counting the prompt. Defaults to `20`.
    * `:min_new_tokens` - the minimum number of tokens to generate, not
      counting the prompt. Defaults to `nil`.
    * `:max_length` - the maximum length of the whole sequence, prompt
      (with its padding) included. Prefer `:max_new_tokens`. Defaults to `nil`.
    * `:min_length` - the minimum length of the whole sequence, prompt
      (with its padding) included. Prefer `:min_new_tokens`. Defaults to `nil`.

  `configure/2` keeps `:max_new_tokens` and `:max_length` mutually exclusive:
  setting one clears the other, and setting both raises. The same holds for
  `:min_new_tokens` and `:min_length`.

  ## Options controlling strategy

    * `:strategy` - how each token is chosen. Defaults to
      `%{type: :greedy_search}`. One of:

        * `%{type: :greedy_search}` - the most probable token.
        * `%{type: :contrastive_search, top_k: k, alpha: a}` - the best of the
          `k` most probable tokens by probability minus `a` times their
          similarity to the text so far. Both keys are required.
        * `%{type: :multinomial_sampling}` - samples from the model's
          distribution, restricted to the `:top_k` most probable tokens
          and/or the smallest set whose probabilities add up to `:top_p`
          (both optional). Reproducible with a `:seed` in the input.

  ## Options controlling generated tokens

    * `:decoder_start_token_id` - the first decoder token of an
      encoder-decoder model. Defaults to `nil` (then `:bos_token_id`).
    * `:forced_bos_token_id` - a token forced as the first generated token.
      Defaults to `nil`.
    * `:forced_eos_token_id` - a token forced as the last token when the
      maximum length is reached. Defaults to `nil`.
    * `:forced_token_ids` - `{index, token_id}` pairs forcing `token_id` at
      position `index` of the sequence. Defaults to `[]`.
    * `:suppressed_token_ids` - token ids that are never generated.
      Defaults to `[]`.
    * `:no_repeat_ngram_length` - n-grams of this length occur at most once.
      Defaults to `nil`.
    * `:temperature` - scales the distribution before sampling. Defaults to
      `nil`.

  ## Special tokens

    * `:bos_token_id` - the beginning-of-sequence token. Defaults to `nil`.
    * `:eos_token_id` - the end-of-sequence token, or a list of them.
      Defaults to `nil`.
    * `:pad_token_id` - the padding token. Defaults to `nil` (then the
      first `:eos_token_id`).
    * `:extra_config` - model-specific settings (Whisper's languages and
      tasks). Defaults to `nil`.
  """

  defstruct max_new_tokens: 20,
            min_new_tokens: nil,
            max_length: nil,
            min_length: nil,
            strategy: %{type: :greedy_search},
            decoder_start_token_id: nil,
            forced_bos_token_id: nil,
            forced_eos_token_id: nil,
            forced_token_ids: [],
            suppressed_token_ids: [],
            no_repeat_ngram_length: nil,
            temperature: nil,
            bos_token_id: nil,
            eos_token_id: nil,
            pad_token_id: nil,
            extra_config: nil

  @type t :: %__MODULE__{
          max_new_tokens: pos_integer() | nil,
          min_new_tokens: non_neg_integer() | nil,
          max_length: pos_integer() | nil,
          min_length: non_neg_integer() | nil,
          strategy: map(),
          decoder_start_token_id: non_neg_integer() | nil,
          forced_bos_token_id: non_neg_integer() | nil,
          forced_eos_token_id: non_neg_integer() | nil,
          forced_token_ids: [{non_neg_integer(), non_neg_integer()}],
          suppressed_token_ids: [non_neg_integer()],
          no_repeat_ngram_length: pos_integer() | nil,
          temperature: number() | nil,
          bos_token_id: non_neg_integer() | nil,
          eos_token_id: non_neg_integer() | [non_neg_integer()] | nil,
          pad_token_id: non_neg_integer() | nil,
          extra_config: term()
        }

  @doc """
  Sets attributes of a generation config; see the module docs for each.

  Raises `ArgumentError` for an unknown attribute, for both
  `:max_new_tokens` and `:max_length` (or both `:min_new_tokens` and
  `:min_length`), and for a malformed `:strategy`. Usually called through
  `PyBridge.configure/2`.
  """
  @spec config(t(), keyword()) :: t()
  def config(%__MODULE__{} = config, opts) when is_list(opts) do
    opts =
      opts
      |> exclusive(:max_new_tokens, :max_length)
      |> exclusive(:min_new_tokens, :min_length)

    with {:ok, strategy} <- Keyword.fetch(opts, :strategy), do: validate_strategy!(strategy)

    Enum.reduce(opts, config, fn {key, value}, config ->
      if key != :__struct__ and Map.has_key?(config, key) do
        Map.put(config, key, value)
      else
        raise ArgumentError, "unexpected attribute #{inspect(key)} for %#{inspect(__MODULE__)}{}"
      end
    end)
  end

  defp exclusive(opts, new_key, total_key) do
    case {opts[new_key], opts[total_key]} do
      {nil, nil} ->
        opts

      {_, nil} ->
        Keyword.put(opts, total_key, nil)

      {nil, _} ->
        Keyword.put(opts, new_key, nil)

      _ ->
        raise ArgumentError,
              "only one of #{inspect(new_key)} or #{inspect(total_key)} options must be given, but got both"
    end
  end

  defp validate_strategy!(%{type: :greedy_search} = strategy),
    do: strategy_keys!(strategy, [:type], [])

  defp validate_strategy!(%{type: :contrastive_search} = strategy),
    do: strategy_keys!(strategy, [:type, :top_k, :alpha], [])

  defp validate_strategy!(%{type: :multinomial_sampling} = strategy),
    do: strategy_keys!(strategy, [:type], [:top_k, :top_p])

  defp validate_strategy!(%{type: type}) do
    raise ArgumentError,
          "expected strategy type to be either :greedy_search, :contrastive_search or " <>
            ":multinomial_sampling, got: #{inspect(type)}"
  end

  defp validate_strategy!(%{} = other),
    do:
      raise(
        ArgumentError,
        "expected strategy to have :type, but was not present in #{inspect(other)}"
      )

  defp validate_strategy!(other),
    do: raise(ArgumentError, "expected strategy to be a map, but got: #{inspect(other)}")

  defp strategy_keys!(strategy, required, optional) do
    keys = Map.keys(strategy)

    case Enum.sort(required -- keys) do
      [] ->
        :ok

      missing ->
        raise ArgumentError,
              "missing keys #{inspect(missing)} for strategy #{inspect(strategy.type)}"
    end

    case Enum.sort(keys -- (required ++ optional)) do
      [] ->
        :ok

      extra ->
        raise ArgumentError,
              "unexpected keys #{inspect(extra)} for strategy #{inspect(strategy.type)}"
    end
  end

  @doc false
  # Reads Bumblebee's fields from the JSON object of `generation_config.json`
  # (or `config.json`), with the same names and rules as Bumblebee's loader.
  @spec from_data(map()) :: {:ok, t()} | {:error, String.t()}
  def from_data(data) when is_map(data) do
    data = normalize_data(data)

    opts =
      Enum.flat_map(
        [
          max_new_tokens: "max_new_tokens",
          min_new_tokens: "min_new_tokens",
          max_length: "max_length",
          min_length: "min_length",
          decoder_start_token_id: "decoder_start_token_id",
          bos_token_id: "bos_token_id",
          pad_token_id: "pad_token_id",
          forced_bos_token_id: "forced_bos_token_id",
          forced_eos_token_id: "forced_eos_token_id",
          no_repeat_ngram_length: "no_repeat_ngram_size",
          temperature: "temperature"
        ],
        fn {key, name} -> take(data, name, key, &(is_number(&1) or &1 == nil)) end
      ) ++
        take(data, "eos_token_id", :eos_token_id, &(is_number(&1) or ints?(&1) or &1 == nil)) ++
        take(data, "suppress_tokens", :suppressed_token_ids, &ints?/1) ++
        forced_token_ids(data) ++ strategy(data) ++ whisper_extra_config(data)

    {:ok, config(%__MODULE__{}, opts)}
  rescue
    error in ArgumentError ->
      {:error, "cannot read the generation config: #{Exception.message(error)}"}
  end

  # Joint configurations keep the text model's settings in "text_config"; BLIP
  # generates until its SEP token.
  defp normalize_data(%{"model_type" => "blip", "text_config" => %{} = text}),
    do: normalize_data(text)

  defp normalize_data(%{"model_type" => "blip_text_model", "sep_token_id" => sep} = data),
    do: Map.put(data, "eos_token_id", sep)

  defp normalize_data(%{"suppress_tokens" => nil} = data),
    do: normalize_data(Map.delete(data, "suppress_tokens"))

  defp normalize_data(data), do: data

  defp take(data, name, key, valid?) do
    case data do
      %{^name => value} ->
        if valid?.(value),
          do: [{key, value}],
          else:
            raise(
              ArgumentError,
              "expected #{inspect(name)} to be a number, got: #{inspect(value)}"
            )

      _ ->
        []
    end
  end

  defp ints?(list), do: is_list(list) and Enum.all?(list, &is_integer/1)

  defp forced_token_ids(%{"forced_decoder_ids" => ids}) when is_list(ids) do
    [forced_token_ids: for([index, id] when is_integer(id) <- ids, do: {index, id})]
  end

  defp forced_token_ids(_data), do: []

  # Whisper's generation_config.json lists its language and task tokens;
  # Bumblebee keeps them in :extra_config, keyed "en" and :transcribe.
  @whisper_tasks %{"transcribe" => :transcribe, "translate" => :translate}

  defp whisper_extra_config(%{"lang_to_id" => languages, "task_to_id" => tasks} = data)
       when is_map(languages) and is_map(tasks) do
    language_to_token_id =
      for {"<|" <> token, id} <- languages, into: %{}, do: {String.trim_trailing(token, "|>"), id}

    task_to_token_id =
      for {name, id} <- tasks,
          Map.has_key?(@whisper_tasks, name),
          into: %{},
          do: {@whisper_tasks[name], id}

    [
      extra_config: %{
        language_to_token_id: language_to_token_id,
        task_to_token_id: task_to_token_id,
        no_timestamps_token_id: data["no_timestamps_token_id"]
      }
    ]
  end

  defp whisper_extra_config(_data), do: []

  defp strategy(data) do
    opts =
      [sample: "do_sample", top_k: "top_k", top_p: "top_p", alpha: "penalty_alpha"]
      |> Enum.map(fn {key, name} -> {key, data[name]} end)
      |> Enum.reject(fn {_key, value} -> value == nil end)
      |> Map.new()

    case opts do
      %{sample: true} ->
        options =
          Map.filter(opts, fn
            {:top_k, k} -> k > 0
            {:top_p, p} -> p < 1.0
            _ -> false
          end)

        [strategy: Map.put(options, :type, :multinomial_sampling)]

      %{top_k: top_k, alpha: alpha} when top_k > 1 and alpha > 0 ->
        [strategy: %{type: :contrastive_search, top_k: top_k, alpha: alpha}]

      _ ->
        []
    end
  end

  @doc false
  # Reads the repository's generation config through `bridge generation-config`.
  @spec load(PyBridge.repository(), keyword()) :: {:ok, t()} | {:error, String.t()}
  def load(repository, opts) do
    repository = PyBridge.Repository.normalize!(repository)

    with {:ok, command} <- command(opts[:bridge_command]) do
      args = ["generation-config", "--etf"] ++ PyBridge.Repository.args(repository)
      port = PyBridge.Command.open(command, args, env: PyBridge.Repository.env(repository))
      await(port, nil)
    end
  end

  defp command(command) do
    case PyBridge.Command.resolve(command) do
      {:ok, command} -> {:ok, command}
      {:error, error} -> {:error, Exception.message(error)}
    end
  end

  defp await(port, answer) do
    receive do
      {^port, {:data, frame}} ->
        await(port, PyBridge.Protocol.decode(frame))

      {^port, {:exit_status, status}} ->
        case answer do
          {:ok, {:ok, data}} -> from_data(data)
          {:ok, {:error, nil, error}} -> {:error, PyBridge.Error.from_wire(error).message}
          {:error, error} -> {:error, error.message}
          _ -> {:error, "bridge generation-config exited with status #{status} and no answer"}
        end
    end
  end
end
