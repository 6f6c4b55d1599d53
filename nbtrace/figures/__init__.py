"""Pictures of images and tap maps. Imported only when a picture is asked for."""
