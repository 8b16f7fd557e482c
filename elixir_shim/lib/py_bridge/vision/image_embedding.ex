defmodule PyBridge.Vision.ImageEmbedding do
  @moduledoc false

  alias PyBridge.{Featurizer, Shared}
  alias PyBridge.Vision.Image

  def serving(model_info, %Featurizer{} = featurizer, opts) do
    opts =
      Shared.validate_options!(opts, [
        :compile,
        output_attribute: :pooled_state,
        embedding_processor: nil,
        defn_options: [],
        preallocate_params: false
      ])

    compile = Shared.compile!(opts[:compile], [:batch_size])
    Shared.one_of!(opts[:embedding_processor], [nil, :l2_norm], :embedding_processor)

    unless is_atom(opts[:output_attribute]) and opts[:output_attribute] != nil do
      raise ArgumentError,
            "expected :output_attribute to be an atom, got: #{inspect(opts[:output_attribute])}"
    end

    options =
      Map.merge(Featurizer.worker_options(featurizer), %{
        output_attribute: opts[:output_attribute],
        embedding_processor: opts[:embedding_processor]
      })

    Shared.serving(model_info, :image_embedding, options, compile, &Image.validate/1)
  end
end
