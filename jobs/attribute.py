from nurture_lake.jobs.attribute import main

if __name__ == "__main__":
    main()
