defmodule PyBridge.NativeCheck do
  @moduledoc """
  Whether Bumblebee runs a model natively, and what to switch to when it does.

  Bumblebee loads a model only when the class named in its `config.json`
  (`"architectures"`) is in its class map. That map is kept as data in
  `protocols/bumblebee_architectures.tsv`, which this module embeds when it
  is compiled (the Python side, `bridge native-check`, reads the same file),
  so an answer needs no worker. Use it through `PyBridge.native_check/2`, or
  from a shell with `mix py_bridge.native_check`.

      PyBridge.NativeCheck.lookup("BertForSequenceClassification")
      #=> %{module: Bumblebee.Text.Bert, architecture: :for_sequence_classification,
      #     servings: [{Bumblebee.Text, :text_classification, 3}, ...]}

  Servings are `{module, function, arity}` tuples naming Bumblebee's serving
  constructors (arity with the options argument). An empty list means the
  model loads in Bumblebee but no serving takes its head.
  """

  @table_path Path.expand("../../../protocols/bumblebee_architectures.tsv", __DIR__)
  @external_resource @table_path

  @columns ["hf_architecture", "module", "architecture", "servings"]

  # Parsed at compile time: a missing or malformed table is a compile error,
  # never a wrong answer at run time.
  {meta, rows} =
    @table_path
    |> File.read!()
    |> String.split("\n", trim: true)
    |> Enum.split_with(&String.starts_with?(&1, "#"))

  @meta for line <- meta,
            [_, key, value] <- [Regex.run(~r/^#\s*(\w+):\s*(.+)$/, line)],
            into: %{},
            do: {key, String.trim(value)}

  [header | rows] = Enum.map(rows, &String.split(&1, "\t"))

  if header != @columns do
    raise CompileError,
      description:
        "#{@table_path}: expected the columns #{inspect(@columns)}, got: #{inspect(header)}"
  end

  parse_serving = fn serving ->
    [target, arity] = String.split(serving, "/")
    {module, [function]} = target |> String.split(".") |> Enum.split(-1)
    {Module.concat(module), String.to_atom(function), String.to_integer(arity)}
  end

  @table (for [name, module, architecture, servings] <- rows, into: %{} do
            servings =
              if servings == "-",
                do: [],
                else: servings |> String.split(",") |> Enum.map(parse_serving)

            {name,
             %{
               module: Module.concat([module]),
               architecture: String.to_atom(architecture),
               servings: servings
             }}
          end)

  @type serving :: {module(), atom(), arity()}
  @type entry :: %{module: module(), architecture: atom(), servings: [serving()]}

  @type native :: %{
          module: module(),
          architecture: atom(),
          servings: [serving()],
          hf_architecture: String.t(),
          load_options: keyword(),
          bumblebee_version: String.t()
        }

  @type not_native :: %{
          hf_architecture: String.t() | nil,
          model_type: String.t() | nil,
          closest_module: module() | nil,
          closest_heads: [atom()],
          reason: String.t(),
          bumblebee_version: String.t()
        }

  @type answer :: {:native, native()} | {:not_native, not_native()}

  @doc "The Bumblebee version the table reflects."
  @spec bumblebee_version() :: String.t()
  def bumblebee_version, do: Map.fetch!(@meta, "bumblebee_version")

  @doc "The Bumblebee commit the table was read from."
  @spec bumblebee_commit() :: String.t()
  def bumblebee_commit, do: Map.fetch!(@meta, "bumblebee_commit")

  @doc "Every class Bumblebee loads, with its module, architecture and servings."
  @spec table() :: %{String.t() => entry()}
  def table, do: @table

  @doc "The entry for one `transformers` class name, or `nil`."
  @spec lookup(String.t()) :: entry() | nil
  def lookup(hf_architecture), do: Map.get(@table, hf_architecture)

  @doc """
  Classifies a model spec.

  `architecture` is the head the model was loaded with when the user chose
  one (the `:architecture` option of `PyBridge.load_model/2`); Bumblebee
  takes the same option, so a head the module has stays native.
  """
  @spec check(PyBridge.ModelSpec.t(), atom() | nil) :: answer()
  def check(%PyBridge.ModelSpec{} = spec, architecture \\ nil) do
    name = spec.hf_architecture

    case name && lookup(name) do
      nil ->
        reason =
          if name,
            do:
              "#{name} is not among the #{map_size(@table)} classes Bumblebee #{bumblebee_version()} loads",
            else: "config.json names no architecture class"

        not_native(name, spec.model_type, reason)

      %{architecture: ^architecture} = entry ->
        native(name, entry, [])

      entry when architecture == nil ->
        native(name, entry, [])

      entry ->
        heads = heads(entry.module)

        case Map.fetch(heads, architecture) do
          {:ok, servings} ->
            native(name, %{entry | architecture: architecture, servings: servings},
              architecture: architecture
            )

          :error ->
            not_native(
              name,
              spec.model_type,
              "#{inspect(entry.module)} has no #{inspect(architecture)} head"
            )
        end
    end
  end

  @doc """
  The answer as a few lines of text, for people.
  """
  @spec format(answer()) :: String.t()
  def format({:native, answer}) do
    servings =
      case answer.servings do
        [] -> ["no Bumblebee serving takes this head; run the model with Axon"]
        servings -> Enum.map(servings, &format_serving/1)
      end

    load =
      case answer.load_options do
        [] ->
          []

        options ->
          ["  load with:     Bumblebee.load_model(repository, #{format_options(options)})"]
      end

    Enum.join(
      [
        "#{answer.hf_architecture} is supported natively by Bumblebee #{answer.bumblebee_version}.",
        "  module:        #{inspect(answer.module)}",
        "  architecture:  #{inspect(answer.architecture)}"
      ] ++ load ++ ["  switch to:     " <> Enum.join(servings, "\n                 ")],
      "\n"
    )
  end

  def format({:not_native, answer}) do
    closest =
      case answer.closest_module do
        nil ->
          []

        module ->
          [
            "  closest:       #{inspect(module)}, with heads " <>
              Enum.map_join(answer.closest_heads, ", ", &inspect/1)
          ]
      end

    Enum.join(
      ["Not yet: #{answer.reason}"] ++
        closest ++
        ["  keep using PyBridge for this model; check again after upgrading Bumblebee"],
      "\n"
    )
  end

  @doc false
  @spec format_serving(serving()) :: String.t()
  def format_serving({module, function, arity}), do: "#{inspect(module)}.#{function}/#{arity}"

  defp format_options(options),
    do: Enum.map_join(options, ", ", fn {key, value} -> "#{key}: #{inspect(value)}" end)

  defp native(name, entry, load_options) do
    {:native,
     %{
       module: entry.module,
       architecture: entry.architecture,
       servings: entry.servings,
       hf_architecture: name,
       load_options: load_options,
       bumblebee_version: bumblebee_version()
     }}
  end

  defp not_native(name, model_type, reason) do
    module = closest_module(name, model_type)

    {:not_native,
     %{
       hf_architecture: name,
       model_type: model_type,
       closest_module: module,
       closest_heads: if(module, do: module |> heads() |> Map.keys() |> Enum.sort(), else: []),
       reason: reason,
       bumblebee_version: bumblebee_version()
     }}
  end

  # A model family is the class name without its head ("XLMRobertaForMaskedLM"
  # -> "xlmroberta"); config.json's model_type ("xlm-roberta") normalizes to
  # the same key.
  defp closest_module(name, model_type) do
    families =
      @table
      |> Enum.sort()
      |> Enum.reduce(%{}, fn {class, entry}, acc ->
        Map.put_new(acc, family_key(class), entry.module)
      end)

    [name && family_key(name), model_type && normalize(model_type)]
    |> Enum.reject(&is_nil/1)
    |> Enum.find_value(&Map.get(families, &1))
  end

  defp family_key(name) do
    name
    |> String.replace(~r/(For[A-Za-z]+|LMHeadModel|EncoderModel|Model|Backbone)$/, "")
    |> normalize()
  end

  defp normalize(name), do: name |> String.downcase() |> String.replace(~r/[^a-z0-9]/, "")

  defp heads(module) do
    for {_name, %{module: ^module} = entry} <- @table,
        reduce: %{},
        do: (acc -> Map.put_new(acc, entry.architecture, entry.servings))
  end
end
