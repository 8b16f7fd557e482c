defmodule PyBridge.ModelSpec do
  @moduledoc """
  What a model is, read from its `config.json` by the worker.

  Mirrors the fields of a Bumblebee spec that servings and applications read:
  `:architecture` uses Bumblebee's atoms (`:base`, `:for_sequence_classification`,
  `:for_causal_language_modeling`, ...) and `:id_to_label` maps class indices to
  labels. `:hf_architecture` keeps the `transformers` class name, which is how
  `PyBridge.native_check/1` finds the matching Bumblebee module.
  """

  defstruct [
    :architecture,
    :hf_architecture,
    :model_type,
    :max_positions,
    :path,
    id_to_label: %{},
    has_tokenizer: false,
    has_featurizer: false,
    has_generation_config: false
  ]

  @type t :: %__MODULE__{
          architecture: atom(),
          hf_architecture: String.t() | nil,
          model_type: String.t() | nil,
          id_to_label: %{non_neg_integer() => String.t()},
          max_positions: pos_integer() | nil,
          path: String.t(),
          has_tokenizer: boolean(),
          has_featurizer: boolean(),
          has_generation_config: boolean()
        }

  @doc false
  @spec from_wire(map()) :: t()
  def from_wire(map) when is_map(map) do
    fields = Map.take(map, Map.keys(%__MODULE__{}) -- [:__struct__])

    # Architecture names arrive as binaries so decoding never creates atoms;
    # they come from transformers class names, a small and bounded set.
    architecture =
      case fields[:architecture] do
        name when is_binary(name) -> String.to_atom(name)
        other -> other
      end

    struct!(__MODULE__, Map.put(fields, :architecture, architecture))
  end
end
